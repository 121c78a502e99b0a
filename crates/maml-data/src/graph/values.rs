//! The numbers of one meta step written into its graph, so that the picture and a
//! printout of the step can be read together. A linear layer with one step size and
//! plain SGD gets every node's value from the seed's trace ([`trace_meta_step`]); any
//! other problem gets what its answer holds ([`solve`]): the initial parameters, the
//! fast weights after the last step, the meta-loss and the meta-gradient.

use burn::prelude::Backend;
use maml_core::Loss;
use maml_core::config::{InnerOptimizer, MetaConfig};
use maml_core::data::LinearWeights;
use maml_core::data::layers::{Array, LayerSpec, LayeredWeights};
use maml_core::error::Result;

use super::{EdgeKind, MetaGraph};
use crate::problem::{InnerLr, Problem};
use crate::solve::solve;
use crate::trace::trace_meta_step;

/// At most this many entries are written out; a larger tensor shows its norm.
const ENTRIES: usize = 4;

/// A number to 7 significant digits, trailing zeros dropped.
fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (6 - x.abs().log10().floor() as i64).clamp(0, 12) as usize;
    let text = format!("{x:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

/// Numbers as the picture writes them: one, a short list, or the norm of many.
fn numbers(values: &[f64]) -> String {
    match values {
        [x] => num(*x),
        v if v.len() <= ENTRIES => {
            format!(
                "[{}]",
                v.iter().map(|&x| num(x)).collect::<Vec<_>>().join(", ")
            )
        }
        v => {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            format!("‖·‖ = {} ({} entries)", num(norm), v.len())
        }
    }
}

fn set(graph: &mut MetaGraph, id: &str, value: String) {
    if let Some(node) = graph.nodes.iter_mut().find(|n| n.id == id) {
        node.value = Some(value);
    }
}

/// Appends `value` to the label of the backward edge into `id`.
fn set_backward(graph: &mut MetaGraph, id: &str, value: String) {
    for edge in graph.edges.iter_mut() {
        if edge.kind == EdgeKind::Backward && edge.to == id {
            let label = edge.label.get_or_insert_with(String::new);
            label.push_str(&format!("\n= {value}"));
        }
    }
}

fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

/// Writes the numbers of one meta step of `problem`, in the graph's order, computed on
/// backend `B`, into `graph` (built by [`super::meta_graph`] from the same problem).
pub fn write_values<B: Backend>(
    graph: &mut MetaGraph,
    problem: &Problem,
    device: &B::Device,
) -> Result<()> {
    let mut problem = problem.clone();
    problem.order = graph.order;
    let task = &problem.tasks[0];
    set(graph, "x_spt", numbers(&flat(&task.support.x)));
    set(graph, "x_qry", numbers(&flat(&task.query.x)));
    if let Some(y) = &task.support.y {
        set(graph, "y_spt", numbers(&flat(y)));
    }
    if let Some(y) = &task.query.y {
        set(graph, "y_qry", numbers(&flat(y)));
    }
    let family = &problem.family;
    let traced = matches!(problem.inner_lr, InnerLr::Scalar(_))
        && problem.imaml.is_none()
        && problem.loss != Loss::CrossEntropy
        && family.inner_optimizer == InnerOptimizer::Sgd
        && family.inner_layers.is_none()
        && family.step_loss_weights.is_none()
        && !family.reptile;
    match (problem.linear_weights(), traced, graph.node("w0").is_some()) {
        (Some(initial), true, true) => trace_values::<B>(graph, &problem, &initial, device),
        _ => answer_values::<B>(graph, &problem, device),
    }
}

/// Every node of the seed-named graph, task 0's (the first task's) where tasks differ.
fn trace_values<B: Backend>(
    graph: &mut MetaGraph,
    problem: &Problem,
    initial: &LinearWeights,
    device: &B::Device,
) -> Result<()> {
    let adapt = problem.adapt_config();
    let lr = adapt.inner_lr;
    let config = MetaConfig::new(adapt).with_meta_lr(1.0);
    let trace = trace_meta_step::<B>(initial, &problem.tasks, config, device)?;
    let steps = trace.inner_steps.len();
    let single = steps == 1;
    let mut w = initial.clone();
    for (k, step) in trace.inner_steps.iter().enumerate() {
        let loss = if single {
            "loss_spt".into()
        } else {
            format!("loss_spt{k}")
        };
        set(graph, &loss, num(step.support_loss[0]));
        let grad = &step.support_grad[0];
        set(graph, &format!("grad_w{k}"), numbers(&flat(&grad.weight)));
        set(graph, &format!("grad_b{k}"), numbers(&grad.bias));
        set(graph, &format!("w{k}"), numbers(&flat(&w.weight)));
        set(graph, &format!("b{k}"), numbers(&w.bias));
        for (row, g) in w.weight.iter_mut().zip(&grad.weight) {
            for (x, d) in row.iter_mut().zip(g) {
                *x -= lr * d;
            }
        }
        for (x, d) in w.bias.iter_mut().zip(&grad.bias) {
            *x -= lr * d;
        }
    }
    let fast = &trace.fast_weights[0];
    set(graph, &format!("w{steps}"), numbers(&flat(&fast.weight)));
    set(graph, &format!("b{steps}"), numbers(&fast.bias));
    let x = &problem.tasks[0].query.x;
    if fast.weight.len() == 1 && fast.weight[0].len() == 1 && x.len() == 1 {
        let product = fast.weight[0][0] * x[0][0];
        set(graph, "wx_qry", num(product));
        set(graph, "out_qry", num(product + fast.bias[0]));
    }
    set(graph, "loss_qry", num(trace.query_loss[0]));
    set_backward(graph, "w0", numbers(&flat(&trace.meta_grad.weight)));
    set_backward(graph, "b0", numbers(&trace.meta_grad.bias));
    if problem.tasks.len() > 1 {
        graph.notes.push(format!(
            "values: the first task's; the meta-loss {} and the meta-gradient are the \
             mean over the {} tasks",
            num(trace.meta_loss),
            problem.tasks.len()
        ));
    }
    Ok(())
}

/// The arrays of layer `l` as one list (weight, then bias).
fn layer_values(weights: &LayeredWeights, l: usize) -> Vec<(&'static str, &Array)> {
    let layer = &weights.layers[l];
    [
        ("weight", layer.weight.as_ref()),
        ("bias", layer.bias.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, a)| Some((name, a?)))
    .collect()
}

/// The initial parameters, the fast weights after the last step, the meta-loss and the
/// meta-gradient, from the problem's answer.
fn answer_values<B: Backend>(
    graph: &mut MetaGraph,
    problem: &Problem,
    device: &B::Device,
) -> Result<()> {
    let answer = solve::<B>(problem, device)?;
    let initial = problem.model.weights();
    let steps = problem.inner_steps;
    let seed = problem.model.layers.len() == 1
        && matches!(problem.model.layers[0], LayerSpec::Linear { .. });
    for l in 0..problem.model.layers.len() {
        let mut whole = (Vec::new(), Vec::new(), Vec::new());
        for (name, array) in layer_values(&initial, l) {
            let id = match seed {
                true => format!("{}0", &name[..1]),
                false => format!("l{l}_{name}_0"),
            };
            set(graph, &id, numbers(&array.values));
            whole.0.extend(&array.values);
            if let Some((_, fast)) = answer
                .fast_weights
                .first()
                .and_then(|f| layer_values(f, l).into_iter().find(|(n, _)| *n == name))
            {
                let id = match seed {
                    true => format!("{}{steps}", &name[..1]),
                    false => format!("l{l}_{name}_{steps}"),
                };
                if steps > 0 {
                    set(graph, &id, numbers(&fast.values));
                }
                whole.1.extend(&fast.values);
            }
            if let Some((_, grad)) = layer_values(&answer.meta_grad, l)
                .into_iter()
                .find(|(n, _)| *n == name)
            {
                let id = match seed {
                    true => format!("{}0", &name[..1]),
                    false => format!("l{l}_{name}_0"),
                };
                set_backward(graph, &id, numbers(&grad.values));
                whole.2.extend(&grad.values);
            }
        }
        // A layer drawn as one node.
        if graph.node(&format!("l{l}_0")).is_some() {
            set(graph, &format!("l{l}_0"), numbers(&whole.0));
            if steps > 0 && !whole.1.is_empty() {
                set(graph, &format!("l{l}_{steps}"), numbers(&whole.1));
            }
            set_backward(graph, &format!("l{l}_0"), numbers(&whole.2));
        }
    }
    let objective = match graph.node("meta_loss") {
        Some(_) => "meta_loss",
        None => "loss_qry",
    };
    set(graph, objective, num(answer.meta_loss));
    graph.notes.push(match problem.tasks.len() {
        1 => "values: the initial weights, the fast weights after the last step, the \
              meta-loss and the meta-gradient"
            .into(),
        n => format!(
            "values: the initial weights, the first task's fast weights after the last step, \
             the meta-loss and the meta-gradient (means over the {n} tasks)"
        ),
    });
    Ok(())
}
