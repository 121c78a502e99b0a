//! The computation graph of one meta step of a problem, as its math says: the initial
//! parameters by layer and name, the support and query sets, each inner step's support
//! loss, gradients and fast weights, the query loss, and the meta-gradient's backward
//! path. The edges into the support gradients are the ones second order differentiates
//! through and first order cuts (the seed's "first-order approximation?").
//!
//! [`meta_graph`] builds the structure, [`values`] writes a trace's numbers into it,
//! [`render`] draws it as Graphviz DOT or SVG (pure Rust, no Graphviz needed).
//!
//! A linear layer alone is drawn with the seed's names (`w0`, `b0`, `x_spt`, `y_spt`,
//! `w1`, `b1`, `x_qry`, `y_qry`, `loss_qry`); other models name each tensor by its layer
//! (`θ0 0.weight`), or each layer when the model has more than
//! [`FOLD_LAYERS_FROM`] tensors. Inner steps past [`GraphOptions::max_steps`] are folded
//! into one node, and the title says so.

mod build;
mod parts;
pub mod render;
pub mod values;

pub use build::meta_graph;

use maml_core::Order;
use serde::Serialize;

/// The number of parameter tensors from which a node stands for a whole layer.
pub const FOLD_LAYERS_FROM: usize = 7;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// An initial parameter, or a per-step batch norm's sets: what the meta step learns.
    MetaParameter,
    /// A learned inner step size (Meta-SGD, LSLR): a meta-parameter too.
    StepSize,
    /// The support or query set's inputs or targets.
    Data,
    /// A support loss of an inner step.
    SupportLoss,
    /// A support gradient.
    Gradient,
    /// An inner optimizer's direction (momentum, Adam).
    Direction,
    /// A fast weight.
    FastWeight,
    /// A layer of the query forward pass.
    Operation,
    /// The query loss or the meta-loss.
    QueryLoss,
    /// Inner steps drawn as one node.
    Fold,
    /// A meta-gradient that is not a backward pass (Reptile's, iMAML's).
    MetaGradient,
}

/// How an edge is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The forward computation.
    Forward,
    /// Into a support gradient: second order differentiates through it, first order
    /// treats the gradient as a constant (cuts it).
    Gradient,
    /// The meta-gradient's backward path, from the meta-loss to what it updates.
    Backward,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// A name unique in the graph (the seed's names where they apply).
    pub id: String,
    /// What the picture writes.
    pub label: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// The number(s) from a trace ([`values`]), when drawn with values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One directed edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// The id of the node it leaves.
    pub from: String,
    /// The id of the node it enters.
    pub to: String,
    /// How it is followed.
    pub kind: EdgeKind,
    /// Whether this order's meta-gradient does not pass it (first order's cut edges,
    /// iMAML's inner loop).
    pub cut: bool,
    /// What the picture writes beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The graph of one meta step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaGraph {
    /// The picture's title: algorithm, order, inner steps.
    pub title: String,
    /// The order drawn.
    pub order: Order,
    /// Lines under the title (folded steps, tasks, values).
    pub notes: Vec<String>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The edges.
    pub edges: Vec<Edge>,
}

impl MetaGraph {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub(super) fn push(&mut self, id: impl Into<String>, label: impl Into<String>, kind: NodeKind) {
        self.nodes.push(Node {
            id: id.into(),
            label: label.into(),
            kind,
            value: None,
        });
    }

    pub(super) fn link(&mut self, from: &str, to: &str, kind: EdgeKind) {
        self.edges.push(Edge {
            from: from.into(),
            to: to.into(),
            kind,
            cut: false,
            label: None,
        });
    }

    pub(super) fn link_labelled(
        &mut self,
        from: &str,
        to: &str,
        kind: EdgeKind,
        cut: bool,
        label: String,
    ) {
        self.edges.push(Edge {
            from: from.into(),
            to: to.into(),
            kind,
            cut,
            label: Some(label),
        });
    }
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOptions {
    /// The order to draw (`None`: the problem's).
    pub order: Option<Order>,
    /// Inner steps drawn one by one (at least 2); more are folded, keeping the last.
    pub max_steps: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            order: None,
            max_steps: 3,
        }
    }
}
