//! Building a meta step's graph from a problem: the meta-parameters and data, each drawn
//! inner step, the meta-objective and the meta-gradient's path.

use maml_core::Loss;
use maml_core::Order;
use maml_core::config::InnerOptimizer;
use maml_core::data::layers::LayerSpec;
use maml_core::error::{MamlError, Result};

use super::parts::{Group, Names, data_nodes, drawn_steps, groups, query_forward};
use super::{Edge, EdgeKind, GraphOptions, MetaGraph, NodeKind};
use crate::problem::{InnerLr, Problem};

/// The graph of one meta step of `problem` (checked first), for `options.order` or the
/// problem's order.
pub fn meta_graph(problem: &Problem, options: &GraphOptions) -> Result<MetaGraph> {
    if options.max_steps < 2 {
        return Err(MamlError::InvalidHyperparameter {
            name: "max_steps",
            value: options.max_steps.to_string(),
            reason: "must be at least 2 (the first step and the last)",
        });
    }
    problem.validate()?;
    let order = options.order.unwrap_or(problem.order);
    let family = &problem.family;
    let adapted = crate::family::adapted_layers(&problem.model, family.inner_layers.as_deref())?;
    let groups = groups(problem, &adapted);
    let steps = problem.inner_steps;
    let names = Names {
        seed: problem.model.layers.len() == 1
            && matches!(problem.model.layers[0], LayerSpec::Linear { .. }),
        steps,
    };
    let implicit = problem.imaml.is_some();
    let reptile = family.reptile;
    let algorithm = match (implicit, reptile) {
        (true, _) => "iMAML",
        (_, true) => "Reptile",
        _ if problem.family.step_loss_weights.is_some() => "MAML (multi-step loss)",
        _ => "MAML",
    };
    let (drawn, folded) = drawn_steps(steps, options.max_steps);
    let mut graph = MetaGraph {
        title: format!(
            "{algorithm} meta step, {order} order, {steps} inner step{}",
            if steps == 1 { "" } else { "s" }
        ),
        order,
        notes: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    if let Some((a, b)) = folded {
        graph.notes.push(format!(
            "inner steps {a} to {b} are folded into one node ({} steps)",
            b - a + 1
        ));
    }
    if problem.tasks.len() > 1 {
        graph.notes.push(format!(
            "one task's graph: the meta-loss is the mean over {} tasks",
            problem.tasks.len()
        ));
    }
    if matches!(problem.loss, Loss::CrossEntropy) {
        graph
            .notes
            .push("y: one-hot classes, cross-entropy loss".into());
    }

    // The meta-parameters and the data.
    for g in &groups {
        let mut label = match names.seed && (g.shape == "[1, 1]" || g.shape == "[1]") {
            true => names.param_label(g, 0),
            false => format!("{}\n{}", names.param_label(g, 0), g.shape),
        };
        if g.per_step {
            label.push_str("\none set per step (not adapted)");
        } else if !g.adapted {
            label.push_str("\nnot adapted");
        }
        graph.push(names.param(g, 0), label, NodeKind::MetaParameter);
    }
    let task = &problem.tasks[0];
    data_nodes(&mut graph, "spt", &task.support);

    // Step sizes learned per entry or per step: meta-parameters.
    let learned = match &problem.inner_lr {
        InnerLr::Scalar(_) => None,
        InnerLr::PerParameter(_) => Some("per entry (Meta-SGD)"),
        InnerLr::PerStep(_) => Some("per step (LSLR)"),
    };
    let lr_id = |g: &Group| format!("lr_{}", g.slug);
    if let Some(kind) = learned {
        for g in groups.iter().filter(|g| g.adapted) {
            graph.push(
                lr_id(g),
                format!("α {}\n{kind}", g.name),
                NodeKind::StepSize,
            );
        }
    }
    let lr_symbol = if learned.is_some() { "α" } else { "lr" };

    // The inner steps.
    let direction = match family.inner_optimizer {
        InnerOptimizer::Sgd => None,
        InnerOptimizer::Momentum { .. } => Some("momentum buffer"),
        InnerOptimizer::Adam { .. } => Some("Adam direction"),
    };
    let cut = order == Order::First || implicit;
    let cut_label = match (implicit, order) {
        (true, _) => "not differentiated (implicit gradient)",
        (false, Order::First) => "cut: first-order approximation",
        (false, Order::Second) => "first-order approximation?",
    };
    let adapted_groups: Vec<&Group> = groups.iter().filter(|g| g.adapted).collect();
    for (i, &k) in drawn.iter().enumerate() {
        if i > 0 && drawn[i - 1] + 1 != k {
            // The folded steps between the last drawn step's fast weights and step k's.
            let (a, b) = folded.expect("a gap in the drawn steps is the folded range");
            graph.push(
                "fold",
                format!("inner steps {a} to {b}\n(folded)"),
                NodeKind::Fold,
            );
            for g in &adapted_groups {
                graph.link(&names.param(g, a), "fold", EdgeKind::Forward);
                graph.push(
                    names.param(g, k),
                    names.param_label(g, k),
                    NodeKind::FastWeight,
                );
                graph.link("fold", &names.param(g, k), EdgeKind::Forward);
            }
        }
        let loss = names.support_loss(k);
        graph.push(&loss, &loss, NodeKind::SupportLoss);
        for g in &groups {
            graph.link(&names.param(g, k), &loss, EdgeKind::Forward);
        }
        graph.link("x_spt", &loss, EdgeKind::Forward);
        graph.link("y_spt", &loss, EdgeKind::Forward);
        for (j, g) in adapted_groups.iter().enumerate() {
            let grad = names.grad(g, k);
            graph.push(&grad, names.grad_label(g, k), NodeKind::Gradient);
            // One label per step where the step has many gradients.
            let label = (adapted_groups.len() <= 2 || j == 0).then(|| cut_label.to_string());
            graph.edges.push(Edge {
                from: loss.clone(),
                to: grad.clone(),
                kind: EdgeKind::Gradient,
                cut,
                label,
            });
            let mut step_in = grad;
            if let Some(name) = direction {
                let dir = format!("dir_{}", names.param(g, k));
                graph.push(&dir, format!("{name}\nstep {k}"), NodeKind::Direction);
                graph.link(&step_in, &dir, EdgeKind::Forward);
                if k > 0 && i > 0 && drawn[i - 1] + 1 == k {
                    graph.link(
                        &format!("dir_{}", names.param(g, k - 1)),
                        &dir,
                        EdgeKind::Forward,
                    );
                }
                step_in = dir;
            }
            let (from, to) = (names.param(g, k), names.param(g, k + 1));
            let label = match names.seed && direction.is_none() {
                true => format!(
                    "{} = {} − {lr_symbol}·∂{}/∂{}",
                    names.param_label(g, k + 1),
                    names.param_label(g, k),
                    names.support_loss(k),
                    names.param_label(g, k),
                ),
                false => names.param_label(g, k + 1),
            };
            graph.push(&to, label, NodeKind::FastWeight);
            graph.link(&from, &to, EdgeKind::Forward);
            graph.link(&step_in, &to, EdgeKind::Forward);
            if learned.is_some() {
                graph.link(&lr_id(g), &to, EdgeKind::Forward);
            }
        }
    }

    // The meta-objective and its gradient.
    let meta_parameters: Vec<String> = groups
        .iter()
        .map(|g| names.param(g, 0))
        .chain(
            learned
                .iter()
                .flat_map(|_| adapted_groups.iter().map(|g| lr_id(g))),
        )
        .collect();
    if reptile {
        graph.push(
            "reptile",
            format!("θ0 − θ{steps}\nReptile's meta-gradient\n(no query loss)"),
            NodeKind::MetaGradient,
        );
        for g in &adapted_groups {
            graph.link(&names.param(g, steps), "reptile", EdgeKind::Forward);
            graph.link(&names.param(g, 0), "reptile", EdgeKind::Forward);
            let update = format!("update {}", names.param_label(g, 0));
            graph.link_labelled(
                "reptile",
                &names.param(g, 0),
                EdgeKind::Backward,
                false,
                update,
            );
        }
        return Ok(graph);
    }
    data_nodes(&mut graph, "qry", &task.query);
    query_forward(&mut graph, problem, &groups, &names);
    let objective = match &family.step_loss_weights {
        Some(weights) => {
            graph.push(
                "meta_loss",
                "meta-loss\nΣ_k v_k · loss_qry(θ_k)",
                NodeKind::QueryLoss,
            );
            for (i, &k) in drawn.iter().enumerate() {
                let j = k + 1;
                if j == steps {
                    let label = format!("v{j} = {}", weights[k]);
                    graph.link_labelled("loss_qry", "meta_loss", EdgeKind::Forward, false, label);
                    continue;
                }
                let id = format!("loss_qry{j}");
                graph.push(&id, format!("loss_qry(θ{j})"), NodeKind::QueryLoss);
                for g in &groups {
                    graph.link(&names.param(g, j), &id, EdgeKind::Forward);
                }
                graph.link("x_qry", &id, EdgeKind::Forward);
                graph.link("y_qry", &id, EdgeKind::Forward);
                let label = format!("v{j} = {}", weights[k]);
                graph.link_labelled(&id, "meta_loss", EdgeKind::Forward, false, label);
                if i + 1 < drawn.len() && drawn[i + 1] != k + 1 {
                    graph.link("fold", "meta_loss", EdgeKind::Forward);
                }
            }
            "meta_loss"
        }
        None => "loss_qry",
    };
    if implicit {
        graph.push(
            "implicit",
            "implicit meta-gradient\n(I + H/λ)⁻¹ ∂loss_qry/∂θ_K\nby conjugate gradients",
            NodeKind::MetaGradient,
        );
        graph.link_labelled(
            objective,
            "implicit",
            EdgeKind::Backward,
            false,
            format!("∂loss_qry/∂θ{steps}"),
        );
    }
    let from = if implicit { "implicit" } else { objective };
    for id in &meta_parameters {
        let node = graph.node(id).expect("every meta-parameter has a node");
        let name = node.label.lines().next().unwrap_or_default().to_string();
        let mut label = format!("backpropagate to {name}");
        let group = groups.iter().find(|g| &names.param(g, 0) == id);
        if order == Order::First && !implicit && group.is_some_and(|g| g.adapted) && steps > 0 {
            let g = group.expect("checked above");
            label = format!("{label}\n(first order: ∂/∂{})", names.param_label(g, steps));
        }
        graph.link_labelled(from, id, EdgeKind::Backward, false, label);
    }
    Ok(graph)
}
