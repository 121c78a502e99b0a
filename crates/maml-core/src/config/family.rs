//! The parts of MAML's family that an [`AdaptConfig`] combines: the inner update rule
//! ([`InnerOptimizer`], learned per-step step sizes), the adapted parameters
//! (`inner_params`: ANIL, BOIL), the meta-objective (`step_loss_weights`: MAML++'s
//! multi-step loss) and the meta-gradient method (`reptile`), each checked here once.

use serde::{Deserialize, Serialize};

use super::{AdaptConfig, Order};
use crate::error::{MamlError, Result};

/// The inner loop's update direction `d_k` (steps counted from 0, states starting at
/// zero); the step is then `θ_{k+1} = θ_k − α d_k`. Every rule is differentiable: second
/// order runs through its state, first order treats every support gradient (and so every
/// state built from it) as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum InnerOptimizer {
    /// `d_k = g_k`, plain gradient descent (MAML).
    #[default]
    Sgd,
    /// Heavy ball: `v_k = μ v_{k-1} + g_k`, `d_k = v_k`.
    Momentum {
        /// μ, in `[0, 1)`.
        momentum: f64,
    },
    /// Adam with bias correction, `d_k = m̂ / (sqrt(v̂ + eps_root) + eps)`: `eps_root > 0`
    /// keeps the second derivative of the square root finite where a gradient entry is
    /// zero (optax's remedy; with `eps_root = 0` second order gives NaN there).
    Adam {
        /// β1, in `[0, 1)`.
        beta1: f64,
        /// β2, in `[0, 1)`.
        beta2: f64,
        /// ε added to the square root, `>= 0`.
        eps: f64,
        /// ε added under the square root, `>= 0` (`> 0` in second order).
        eps_root: f64,
    },
}

impl InnerOptimizer {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Momentum { .. } => "momentum",
            Self::Adam { .. } => "adam",
        }
    }

    /// The rule named `name` with the usual settings (momentum 0.9; Adam 0.9, 0.999,
    /// 1e-8, `eps_root` 1e-8).
    pub fn named(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Self::Sgd),
            "momentum" => Ok(Self::Momentum { momentum: 0.9 }),
            "adam" => Ok(Self::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                eps_root: 1e-8,
            }),
            _ => Err(MamlError::UnknownName {
                kind: "inner optimizer",
                value: name.into(),
                expected: "sgd momentum adam",
            }),
        }
    }

    fn check(self, order: Order) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(name, v, "must be in [0, 1)"))
            }
        };
        let non_negative = |name: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(invalid(name, v, "must be a finite number >= 0"))
            }
        };
        match self {
            Self::Sgd => Ok(()),
            Self::Momentum { momentum } => unit("inner_optimizer.momentum", momentum),
            Self::Adam {
                beta1,
                beta2,
                eps,
                eps_root,
            } => {
                unit("inner_optimizer.beta1", beta1)?;
                unit("inner_optimizer.beta2", beta2)?;
                non_negative("inner_optimizer.eps", eps)?;
                non_negative("inner_optimizer.eps_root", eps_root)?;
                if order == Order::Second && eps_root == 0.0 {
                    return Err(invalid(
                        "inner_optimizer.eps_root",
                        eps_root,
                        "must be > 0 in second order (the square root's second \
                         derivative is infinite at a zero gradient entry)",
                    ));
                }
                Ok(())
            }
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> MamlError {
    MamlError::InvalidHyperparameter {
        name,
        value: value.to_string(),
        reason,
    }
}

impl AdaptConfig {
    /// Sets the inner update rule.
    pub fn with_inner_optimizer(mut self, optimizer: InnerOptimizer) -> Self {
        self.inner_optimizer = optimizer;
        self
    }

    /// Sets the parameters the inner loop adapts, by their index in the model's visit
    /// order (`None`: all).
    pub fn with_inner_params(mut self, params: Option<Vec<usize>>) -> Self {
        self.inner_params = params;
        self
    }

    /// Sets MAML++'s multi-step loss: a task's meta-loss is `Σ_k w_k L_query(θ_k)`,
    /// `k = 1..K` (`None`: the query loss at `θ_K`).
    pub fn with_step_loss_weights(mut self, weights: Option<Vec<f64>>) -> Self {
        self.step_loss_weights = weights;
        self
    }

    /// Sets learned per-step, per-parameter-tensor step sizes (MAML++'s LSLR).
    pub fn with_per_step_lr(mut self, per_step_lr: bool) -> Self {
        self.per_step_lr = per_step_lr;
        self
    }

    /// Sets Reptile's meta-gradient, `θ_0 − θ_K` (first order).
    pub fn with_reptile(mut self, reptile: bool) -> Self {
        self.reptile = reptile;
        self
    }

    /// Whether anything beyond plain MAML's inner loop and objective is set (an inner
    /// optimizer, a subset of adapted parameters, a multi-step loss, per-step step sizes,
    /// Reptile): the hand-derived MLP road then does not apply.
    pub fn has_family_parts(&self) -> bool {
        self.inner_optimizer != InnerOptimizer::Sgd
            || self.inner_params.is_some()
            || self.step_loss_weights.is_some()
            || self.per_step_lr
            || self.reptile
    }

    /// Checks the family's fields and the combinations that are refused: the weights of
    /// a multi-step loss (one finite, non-negative number per inner step, not all zero),
    /// the inner optimizer's settings; iMAML with any of them; checkpointing with a
    /// stateful inner optimizer, a multi-step loss or learned per-step sizes; Reptile in
    /// second order, with learned step sizes or with a multi-step loss.
    pub(super) fn validate_family(&self) -> Result<()> {
        self.inner_optimizer.check(self.order)?;
        if let Some(weights) = &self.step_loss_weights {
            if weights.len() != self.inner_steps {
                return Err(invalid(
                    "step_loss_weights",
                    format!("{} weights", weights.len()),
                    "must have one weight per inner step (inner_steps)",
                ));
            }
            if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
                return Err(invalid(
                    "step_loss_weights",
                    w,
                    "must be finite numbers >= 0",
                ));
            }
            if weights.iter().all(|w| *w == 0.0) {
                return Err(invalid(
                    "step_loss_weights",
                    "all 0",
                    "at least one weight must be positive",
                ));
            }
        }
        let parts = [
            (
                self.inner_optimizer != InnerOptimizer::Sgd,
                "inner_optimizer",
            ),
            (self.step_loss_weights.is_some(), "step_loss_weights"),
            (self.per_step_lr, "per_step_lr"),
        ];
        if let Some((_, name)) = parts.iter().find(|(on, _)| *on)
            && self.imaml.is_some()
        {
            return Err(invalid(
                name,
                "set",
                "iMAML solves a proximal inner problem: it takes no inner optimizer, \
                 multi-step loss or per-step step sizes",
            ));
        }
        if let (Some(_), Some((_, name))) = (
            self.inner_checkpoint_every,
            parts.iter().find(|(on, _)| *on),
        ) {
            return Err(invalid(
                name,
                "set",
                "not combined with inner_checkpoint_every (the checkpoints keep the fast \
                 weights alone): checkpoint plain MAML, ANIL/BOIL or per-step batch norm",
            ));
        }
        if self.meta_sgd && self.per_step_lr {
            return Err(invalid(
                "per_step_lr",
                "true",
                "choose per-entry (meta_sgd) or per-step (per_step_lr) step sizes",
            ));
        }
        if self.reptile {
            let refused = if self.order == Order::Second {
                Some(("order", "second"))
            } else if self.meta_sgd || self.per_step_lr {
                Some(("per_step_lr", "true"))
            } else if self.step_loss_weights.is_some() {
                Some(("step_loss_weights", "set"))
            } else if self.imaml.is_some() {
                Some(("imaml", "set"))
            } else {
                None
            };
            if let Some((name, value)) = refused {
                return Err(invalid(
                    name,
                    value,
                    "Reptile is first order, with one step size and no query gradient",
                ));
            }
        }
        Ok(())
    }
}
