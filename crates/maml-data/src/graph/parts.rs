//! The pieces a graph is built from: parameter groups (a tensor or a layer), the names of
//! nodes, the drawn and folded inner steps, the data nodes and the query pass.

use maml_core::data::SetData;
use maml_core::data::layers::{Array, LayerSpec};

use super::{EdgeKind, FOLD_LAYERS_FROM, MetaGraph, NodeKind};
use crate::family::layer_name;
use crate::problem::Problem;

/// A set of parameters drawn as one node: a tensor, or a layer's tensors.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// The id's stem (`w`, `l0_weight`, `l0`).
    pub(super) slug: String,
    /// The name in labels (`w`, `0.weight`, `layer 0 conv2d`).
    pub(super) name: String,
    /// The layer it belongs to.
    pub(super) layer: usize,
    /// Shapes of its tensors, for the initial node's label.
    pub(super) shape: String,
    /// Adapted by the inner loop.
    pub(super) adapted: bool,
    /// A per-step batch norm's sets.
    pub(super) per_step: bool,
}

fn shape_of(array: &Array) -> String {
    let dims: Vec<String> = array.shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

pub(super) fn groups(problem: &Problem, adapted: &[bool]) -> Vec<Group> {
    let layers = &problem.model.layers;
    let tensors: Vec<(usize, &'static str, &Array)> = layers
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| {
            let pair = match layer {
                LayerSpec::Conv2d { weight, bias, .. }
                | LayerSpec::Linear { weight, bias }
                | LayerSpec::BatchNorm { weight, bias, .. } => vec![weight, bias],
                _ => Vec::new(),
            };
            pair.into_iter()
                .zip(["weight", "bias"])
                .map(move |(a, name)| (l, name, a))
        })
        .collect();
    let per_step = |l: usize| matches!(layers[l], LayerSpec::BatchNorm { per_step: true, .. });
    let seed = layers.len() == 1 && matches!(layers[0], LayerSpec::Linear { .. });
    if tensors.len() < FOLD_LAYERS_FROM {
        return tensors
            .into_iter()
            .map(|(l, name, array)| Group {
                slug: match seed {
                    true => name[..1].to_string(),
                    false => format!("l{l}_{name}"),
                },
                name: match seed {
                    true => name[..1].to_string(),
                    false => format!("{l}.{name}"),
                },
                layer: l,
                shape: shape_of(array),
                adapted: adapted[l],
                per_step: per_step(l),
            })
            .collect();
    }
    let mut out: Vec<Group> = Vec::new();
    for (l, _, array) in tensors {
        match out.last_mut() {
            Some(g) if g.layer == l => g.shape = format!("{} {}", g.shape, shape_of(array)),
            _ => out.push(Group {
                slug: format!("l{l}"),
                name: format!("layer {l} {}", layer_name(&layers[l])),
                layer: l,
                shape: shape_of(array),
                adapted: adapted[l],
                per_step: per_step(l),
            }),
        }
    }
    out
}

/// Names of the graph's nodes, in one place.
pub(super) struct Names {
    /// The seed's naming (one linear layer): `w0`, `loss_spt`.
    pub(super) seed: bool,
    /// Inner steps.
    pub(super) steps: usize,
}

impl Names {
    /// The node of group `g` after `k` inner steps (fixed groups: their one node).
    pub(super) fn param(&self, g: &Group, k: usize) -> String {
        let k = if g.adapted { k } else { 0 };
        match self.seed {
            true => format!("{}{k}", g.slug),
            false => format!("{}_{k}", g.slug),
        }
    }

    pub(super) fn param_label(&self, g: &Group, k: usize) -> String {
        match self.seed {
            true => format!("{}{k}", g.name),
            false => format!("θ{k} {}", g.name),
        }
    }

    pub(super) fn support_loss(&self, k: usize) -> String {
        match self.steps {
            1 => "loss_spt".into(),
            _ => format!("loss_spt{k}"),
        }
    }

    pub(super) fn grad(&self, g: &Group, k: usize) -> String {
        format!("grad_{}", self.param(g, k))
    }

    pub(super) fn grad_label(&self, g: &Group, k: usize) -> String {
        format!("∂{}/∂{}", self.support_loss(k), self.param_label(g, k))
    }
}

/// The inner steps drawn one by one: all when at most `max`, else the first `max − 1`
/// and the last; and the folded range, if any.
pub(super) fn drawn_steps(steps: usize, max: usize) -> (Vec<usize>, Option<(usize, usize)>) {
    if steps <= max {
        return ((0..steps).collect(), None);
    }
    let mut drawn: Vec<usize> = (0..max - 1).collect();
    drawn.push(steps - 1);
    (drawn, Some((max - 1, steps - 2)))
}

/// The inputs and targets of one set (`spt` or `qry`); targets of zero say so.
pub(super) fn data_nodes(graph: &mut MetaGraph, set: &str, data: &SetData) {
    graph.push(format!("x_{set}"), format!("x_{set}"), NodeKind::Data);
    let y = match data.y {
        None => format!("y_{set} = 0"),
        Some(_) => format!("y_{set}"),
    };
    graph.push(format!("y_{set}"), y, NodeKind::Data);
}

/// The query forward pass of the fast weights `θ_K`: the seed's `w1·x_qry` and
/// `w1·x_qry + b1` for one linear layer, one node per layer otherwise; then `loss_qry`.
pub(super) fn query_forward(
    graph: &mut MetaGraph,
    problem: &Problem,
    groups: &[Group],
    names: &Names,
) {
    let steps = problem.inner_steps;
    let mut last = "x_qry".to_string();
    if names.seed {
        let (w, b) = (&groups[0], &groups[1]);
        let (wk, bk) = (names.param_label(w, steps), names.param_label(b, steps));
        let product = format!("{wk}·x_qry");
        graph.push("wx_qry", &product, NodeKind::Operation);
        graph.link(&names.param(w, steps), "wx_qry", EdgeKind::Forward);
        graph.link("x_qry", "wx_qry", EdgeKind::Forward);
        graph.push("out_qry", format!("{product} + {bk}"), NodeKind::Operation);
        graph.link("wx_qry", "out_qry", EdgeKind::Forward);
        graph.link(&names.param(b, steps), "out_qry", EdgeKind::Forward);
        last = "out_qry".into();
    } else {
        for (l, layer) in problem.model.layers.iter().enumerate() {
            let id = format!("q{l}");
            graph.push(
                &id,
                format!("{l} {}", layer_name(layer)),
                NodeKind::Operation,
            );
            graph.link(&last, &id, EdgeKind::Forward);
            for g in groups.iter().filter(|g| g.layer == l) {
                graph.link(&names.param(g, steps), &id, EdgeKind::Forward);
            }
            last = id;
        }
    }
    graph.push("loss_qry", "loss_qry", NodeKind::QueryLoss);
    graph.link(&last, "loss_qry", EdgeKind::Forward);
    graph.link("y_qry", "loss_qry", EdgeKind::Forward);
}
