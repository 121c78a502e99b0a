//! MAML++'s training schedules (Antoniou, Edwards and Storkey 2019, "How to train your
//! MAML"), by meta step: derivative-order annealing, the multi-step loss's annealing
//! towards the last step, and the cosine annealing of the meta learning rate (Burn's
//! [`CosineAnnealingLrScheduler`] behind [`MetaLrScheduler`]).

use burn::config::Config;
use burn::optim::LearningRate;
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::lr_scheduler::cosine::{
    CosineAnnealingLrScheduler, CosineAnnealingLrSchedulerConfig,
};
use burn::prelude::Backend;

use crate::config::{AdaptConfig, Order};
// Not `Result`: the `Config` derive names `Result` unqualified.
use crate::error::MamlError;

/// What changes with the meta step during training.
#[derive(Config, Debug, PartialEq)]
pub struct Schedule {
    /// Derivative-order annealing: first order before this meta step, then the order the
    /// inner loop is configured with (MAML++ trains its first 50 of 150 epochs so).
    #[config(default = "None")]
    pub first_order_until: Option<usize>,
    /// Multi-step loss annealing: the query losses of every inner step weighted equally
    /// at meta step 0, moving linearly towards the last step's (the others towards
    /// `0.03 / K`, as MAML++'s code) until this meta step; from it on, the last step's
    /// query loss alone, as MAML++ trains after its multi-step epochs (a meta step then
    /// costs what plain MAML's does).
    #[config(default = "None")]
    pub multi_step_loss_until: Option<usize>,
    /// Cosine annealing of the meta learning rate from its configured value down to
    /// this one over the run's meta steps.
    #[config(default = "None")]
    pub cosine_min_lr: Option<f64>,
}

impl Schedule {
    /// Checks the schedule: a positive, finite minimum learning rate.
    pub fn validate(&self) -> crate::error::Result<()> {
        if let Some(lr) = self.cosine_min_lr
            && !(lr.is_finite() && lr >= 0.0)
        {
            return Err(MamlError::InvalidHyperparameter {
                name: "cosine_min_lr",
                value: lr.to_string(),
                reason: "must be a finite number >= 0",
            });
        }
        Ok(())
    }

    /// The inner loop at meta step `step`, from the configured one `base`.
    pub fn adapt_at(&self, base: &AdaptConfig, step: usize) -> AdaptConfig {
        let mut adapt = base.clone();
        if self.first_order_until.is_some_and(|until| step < until) {
            adapt.order = Order::First;
        }
        if let Some(until) = self.multi_step_loss_until
            && base.inner_steps > 1
            && step < until
        {
            adapt.step_loss_weights = Some(multi_step_weights(base.inner_steps, step, until));
        }
        adapt
    }
}

/// MAML++'s multi-step loss weights for `k` inner steps at meta step `step` of an
/// annealing that ends at `until`: `1/K` each at the start; the first `K − 1` fall
/// linearly to `0.03 / K` and the last takes the rest.
pub fn multi_step_weights(k: usize, step: usize, until: usize) -> Vec<f64> {
    let t = if until == 0 {
        1.0
    } else {
        (step as f64 / until as f64).min(1.0)
    };
    let k_f = k as f64;
    let early = (1.0 / k_f) * (1.0 - t) + (0.03 / k_f) * t;
    let mut weights = vec![early; k];
    weights[k - 1] = 1.0 - early * (k_f - 1.0);
    weights
}

/// The meta learning rate of a learner configured by a
/// [`crate::config::MetaConfig`]: constant, or Burn's cosine annealing.
#[derive(Clone)]
pub enum MetaLrScheduler {
    /// The same rate every meta step.
    Constant(LearningRate),
    /// Burn's [`CosineAnnealingLrScheduler`].
    Cosine(CosineAnnealingLrScheduler),
}

impl MetaLrScheduler {
    /// Cosine annealing from `lr` to `min_lr` (at most `lr`) over `steps` meta steps;
    /// `lr` must be positive (as [`crate::config::MetaConfig::validate`] checks) and
    /// `min_lr` finite and not negative ([`Schedule::validate`]).
    pub fn cosine(lr: f64, min_lr: f64, steps: usize) -> Self {
        let scheduler = CosineAnnealingLrSchedulerConfig::new(lr, steps.max(1))
            .with_min_lr(min_lr.min(lr))
            .init()
            .expect("a positive rate and a minimum in [0, rate] make a valid cosine schedule");
        Self::Cosine(scheduler)
    }
}

impl MetaLrScheduler {
    /// The scheduler as it stands after `steps` meta steps (a resumed run's).
    pub fn after(mut self, steps: usize) -> Self {
        for _ in 0..steps {
            self.step();
        }
        self
    }
}

impl LrScheduler for MetaLrScheduler {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        match self {
            Self::Constant(lr) => *lr,
            Self::Cosine(s) => s.step(),
        }
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        match self {
            Self::Constant(_) => 0,
            Self::Cosine(s) => s.to_record::<B>(),
        }
    }

    fn load_record<B: Backend>(self, record: Self::Record<B>) -> Self {
        match self {
            Self::Constant(lr) => Self::Constant(lr),
            Self::Cosine(s) => Self::Cosine(s.load_record::<B>(record)),
        }
    }
}
