//! Hyperparameters of the inner loop (adaptation), checked once, up front.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::MamlError;

mod family;
pub use family::InnerOptimizer;

/// Whether the meta-gradient differentiates through the inner gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Order {
    /// First-order MAML: inner gradients are constants (detached).
    First,
    /// Exact second-order MAML: inner gradients stay on the graph
    /// (PyTorch's `create_graph=True`), by nesting the autodiff decorator.
    Second,
}

/// The loss of a linear model's predictions against targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Loss {
    /// Sum over all elements of `(prediction - target)^2`.
    Sse,
    /// Mean over all elements of `(prediction - target)^2`.
    Mse,
    /// Mean over the rows of `-log softmax(prediction)[label]` (N-way classification;
    /// targets are one-hot rows, class indices in problem files).
    CrossEntropy,
}

macro_rules! named_enum {
    ($ty:ident, $kind:literal, $expected:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// The name used in files and on the command line.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl FromStr for $ty {
            type Err = MamlError;
            fn from_str(s: &str) -> crate::error::Result<Self> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(MamlError::UnknownName {
                        kind: $kind,
                        value: s.to_string(),
                        expected: $expected,
                    }),
                }
            }
        }
        impl TryFrom<String> for $ty {
            type Error = MamlError;
            fn try_from(s: String) -> crate::error::Result<Self> {
                s.parse()
            }
        }
    };
}
/// How the meta-gradient reaches the initial weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Algorithm {
    /// MAML: through the inner steps, first or second order.
    Maml,
    /// Implicit MAML: at the optimum of a proximal inner problem ([`Imaml`]).
    Imaml,
}

named_enum!(Algorithm, "algorithm", "maml imaml", Maml => "maml", Imaml => "imaml");
named_enum!(Order, "order", "first second", First => "first", Second => "second");
named_enum!(Loss, "loss", "sse mse cross_entropy", Sse => "sse", Mse => "mse", CrossEntropy => "cross_entropy");

/// How a task's fast weights are obtained from the initial weights: `inner_steps`
/// gradient steps of size `inner_lr` (or learned per-parameter sizes, Meta-SGD) on the
/// support loss.
///
/// A Burn [`Config`](burn::config::Config) written by hand rather than derived, so that
/// configurations saved before `meta_sgd` existed still load (Burn's derive makes every
/// field with a default required in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptConfig {
    /// Inner-loop step size (alpha); Meta-SGD's starting value.
    pub inner_lr: f64,
    /// Number of inner gradient steps, K. Zero means no adaptation.
    #[serde(default = "default_inner_steps")]
    pub inner_steps: usize,
    /// First or second order.
    #[serde(default = "default_order")]
    pub order: Order,
    /// Support and query loss.
    #[serde(default = "default_loss")]
    pub loss: Loss,
    /// Meta-SGD (Li et al. 2017): one learned inner step size per parameter entry,
    /// starting at `inner_lr`.
    #[serde(default)]
    pub meta_sgd: bool,
    /// Implicit MAML instead of MAML: the inner loop then minimises
    /// `L_support(φ) + λ/2 ‖φ − θ‖²` and the meta-gradient is implicit
    /// ([`crate::algo::implicit`]); `order` does not apply. `None`: MAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imaml: Option<Imaml>,
    /// Exact meta-gradients in bounded memory: keep the fast weights only at every
    /// `C`-th inner step and recompute the steps between two of them during the backward
    /// sweep ([`crate::algo::checkpointed`]). Same numbers, memory `O(K/C + C)` steps
    /// instead of `O(K)`, about one more inner loop of time. `None`: every step is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_checkpoint_every: Option<usize>,
    /// The inner update rule (differentiable momentum or Adam; default SGD).
    #[serde(default, skip_serializing_if = "is_sgd")]
    pub inner_optimizer: InnerOptimizer,
    /// The parameter tensors the inner loop adapts, by index in the model's visit order
    /// (ANIL: the head's; BOIL: the body's); the others stay at their initial values in
    /// every forward pass. `None`: all (but those the model keeps fixed,
    /// [`crate::model::MetaModel::fixed_params`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_params: Option<Vec<usize>>,
    /// MAML++'s multi-step loss: a task's meta-loss is `Σ_k w_k L_query(θ_k)`,
    /// `k = 1..K`. `None`: the query loss at `θ_K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_loss_weights: Option<Vec<f64>>,
    /// MAML++'s learned per-step, per-layer step sizes (LSLR): one learned scalar per
    /// inner step and parameter tensor, starting at `inner_lr`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_step_lr: bool,
    /// Reptile (Nichol et al. 2018) instead of MAML's gradient: the meta-gradient is
    /// `θ_0 − θ_K` averaged over the tasks (first order, no query gradient).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reptile: bool,
}

fn is_sgd(optimizer: &InnerOptimizer) -> bool {
    *optimizer == InnerOptimizer::Sgd
}

/// Implicit MAML's settings (Rajeswaran et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imaml {
    /// λ, the weight of the proximal term `λ/2 ‖φ − θ‖²` of the inner problem.
    pub lambda: f64,
    /// Conjugate-gradient iterations for `(I + H/λ)⁻¹ ∇L_query(φ*)`.
    pub cg_steps: usize,
}

fn default_inner_steps() -> usize {
    1
}

fn default_order() -> Order {
    Order::Second
}

fn default_loss() -> Loss {
    Loss::Sse
}

impl burn::config::Config for AdaptConfig {}

impl fmt::Display for AdaptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

impl AdaptConfig {
    /// A configuration with step size `inner_lr` and the defaults: one inner step,
    /// second order, `sse`, plain MAML.
    pub fn new(inner_lr: f64) -> Self {
        Self {
            inner_lr,
            inner_steps: default_inner_steps(),
            order: default_order(),
            loss: default_loss(),
            meta_sgd: false,
            imaml: None,
            inner_checkpoint_every: None,
            inner_optimizer: InnerOptimizer::Sgd,
            inner_params: None,
            step_loss_weights: None,
            per_step_lr: false,
            reptile: false,
        }
    }

    /// Sets the number of inner steps.
    pub fn with_inner_steps(mut self, inner_steps: usize) -> Self {
        self.inner_steps = inner_steps;
        self
    }

    /// Sets the order.
    pub fn with_order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Sets the loss.
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Sets Meta-SGD.
    pub fn with_meta_sgd(mut self, meta_sgd: bool) -> Self {
        self.meta_sgd = meta_sgd;
        self
    }

    /// Sets implicit MAML (`Some`) or MAML (`None`).
    pub fn with_imaml(mut self, imaml: Option<Imaml>) -> Self {
        self.imaml = imaml;
        self
    }

    /// Sets gradient checkpointing of the inner loop: the fast weights are kept at every
    /// `every`-th inner step (`None`: at every step).
    pub fn with_inner_checkpoint_every(mut self, every: Option<usize>) -> Self {
        self.inner_checkpoint_every = every;
        self
    }

    /// The checkpoint interval that bounds memory best for `inner_steps` steps,
    /// `⌈√K⌉` (at least 1): `K/C` kept fast weights plus one segment of `C` steps.
    pub fn auto_inner_checkpoint_every(inner_steps: usize) -> usize {
        (inner_steps as f64).sqrt().ceil().max(1.0) as usize
    }

    /// Checks the hyperparameters: `inner_lr` must be finite and positive; for iMAML,
    /// `lambda` too, at least one conjugate-gradient step, and no Meta-SGD; a checkpoint
    /// interval at least 1, and none with iMAML (whose memory does not grow with the
    /// inner steps).
    pub fn validate(&self) -> crate::error::Result<()> {
        check_lr("inner_lr", self.inner_lr)?;
        match (self.inner_checkpoint_every, &self.imaml) {
            (Some(0), _) => {
                return Err(MamlError::InvalidHyperparameter {
                    name: "inner_checkpoint_every",
                    value: "0".into(),
                    reason: "must be at least 1 (inner steps between two kept fast weights)",
                });
            }
            (Some(every), Some(_)) => {
                return Err(MamlError::InvalidHyperparameter {
                    name: "inner_checkpoint_every",
                    value: every.to_string(),
                    reason: "iMAML keeps no inner step (its memory does not grow with \
                             them): checkpoint MAML's inner loop only",
                });
            }
            _ => {}
        }
        if let Some(imaml) = &self.imaml {
            check_lr("lambda", imaml.lambda)?;
            if imaml.cg_steps == 0 {
                return Err(MamlError::InvalidHyperparameter {
                    name: "cg_steps",
                    value: "0".into(),
                    reason: "iMAML needs at least one conjugate-gradient step",
                });
            }
            if self.meta_sgd {
                return Err(MamlError::InvalidHyperparameter {
                    name: "meta_sgd",
                    value: "true".into(),
                    reason: "iMAML's implicit gradient does not reach the step sizes: \
                             use Meta-SGD with MAML",
                });
            }
        }
        self.validate_family()
    }

    /// Checks what a version-1 problem (the linear model) supports besides: `sse` or `mse`,
    /// one step size for every parameter.
    pub fn validate_linear(&self) -> crate::error::Result<()> {
        self.validate()?;
        if self.loss == Loss::CrossEntropy {
            return Err(MamlError::InvalidHyperparameter {
                name: "loss",
                value: self.loss.to_string(),
                reason: "a version-1 problem (the linear model) takes sse or mse: give \
                         the model as version-2 layers (model.layers) for cross_entropy",
            });
        }
        if self.meta_sgd {
            return Err(MamlError::InvalidHyperparameter {
                name: "meta_sgd",
                value: "true".into(),
                reason: "a version-1 problem (the linear model) has one step size: give \
                         the model as version-2 layers with a per-parameter inner_lr for \
                         Meta-SGD",
            });
        }
        Ok(())
    }
}

/// Checks that a learning rate is finite and positive.
pub fn check_lr(name: &'static str, value: f64) -> crate::error::Result<()> {
    if !value.is_finite() {
        return Err(MamlError::InvalidHyperparameter {
            name,
            value: value.to_string(),
            reason: "must be a finite number",
        });
    }
    if value <= 0.0 {
        return Err(MamlError::InvalidHyperparameter {
            name,
            value: value.to_string(),
            reason: "must be positive",
        });
    }
    Ok(())
}

/// How a model's meta-gradient is taken. Both are exact; they differ in speed and in
/// floating-point rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GradientPath {
    /// Hand-derived back-propagation (with exact Hessian-vector products in second order,
    /// [`crate::algo::analytic`]) for the built-in [`crate::model::mlp::Mlp`], on the
    /// plain backend; nested autodiff for any other model.
    #[default]
    Auto,
    /// Nested autodiff for every model ([`crate::algo::learn::autodiff_meta_gradient`]).
    Autodiff,
}

impl GradientPath {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Autodiff => "autodiff",
        }
    }
}

impl std::fmt::Display for GradientPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GradientPath {
    type Err = MamlError;
    fn from_str(s: &str) -> Result<Self, MamlError> {
        match s {
            "auto" => Ok(Self::Auto),
            "autodiff" => Ok(Self::Autodiff),
            _ => Err(MamlError::UnknownName {
                kind: "gradient path",
                value: s.into(),
                expected: "auto autodiff",
            }),
        }
    }
}

/// The meta-optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MetaOptimizer {
    /// Plain SGD, `θ ← θ - meta_lr g` (the seed's).
    Sgd,
    /// Adam with Burn's defaults (β = 0.9, 0.999; ε = 1e-5).
    Adam,
}

impl MetaOptimizer {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MetaOptimizer::Sgd => "sgd",
            MetaOptimizer::Adam => "adam",
        }
    }
}

impl fmt::Display for MetaOptimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for MetaOptimizer {
    type Error = MamlError;
    fn try_from(s: String) -> Result<Self, MamlError> {
        s.parse()
    }
}

impl FromStr for MetaOptimizer {
    type Err = MamlError;
    fn from_str(s: &str) -> Result<Self, MamlError> {
        match s {
            "sgd" => Ok(Self::Sgd),
            "adam" => Ok(Self::Adam),
            _ => Err(MamlError::UnknownName {
                kind: "meta-optimizer",
                value: s.to_string(),
                expected: "sgd adam",
            }),
        }
    }
}

/// The inner loop and the meta-update.
#[derive(Config, Debug, PartialEq)]
pub struct MetaConfig {
    /// The inner loop.
    pub adapt: AdaptConfig,
    /// Meta-learning rate (the seed uses 1).
    #[config(default = 1.0)]
    pub meta_lr: f64,
    /// The meta-optimiser.
    #[config(default = "MetaOptimizer::Sgd")]
    pub meta_optimizer: MetaOptimizer,
}

impl MetaConfig {
    /// Checks every hyperparameter.
    pub fn validate(&self) -> Result<(), MamlError> {
        self.adapt.validate()?;
        check_lr("meta_lr", self.meta_lr)
    }
}
