//! The outer loop: a meta-learner that owns the initial weights and updates them with a
//! meta-optimiser (Burn's SGD or Adam) after each meta-gradient.

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use burn::prelude::*;

use crate::algo::maml::{MetaGradient, Recording, analytic_meta_gradient, meta_gradient_recorded};
use crate::config::{GradientPath, MetaConfig, MetaOptimizer};
use crate::data::LinearWeights;
use crate::data::tasks::TaskBatch;
use crate::model::MetaBackend;
use crate::model::linear::{LinearModel, check_device_precision};

type Model<B> = LinearModel<MetaBackend<B>>;

#[derive(Clone)]
enum MetaOptim<B: Backend> {
    Sgd(OptimizerAdaptor<Sgd<B>, Model<B>, MetaBackend<B>>),
    Adam(OptimizerAdaptor<Adam, Model<B>, MetaBackend<B>>),
}

/// Meta-learns the initial weights of a linear model.
pub struct MetaLearner<B: Backend> {
    model: Model<B>,
    optim: MetaOptim<B>,
    config: MetaConfig,
    path: GradientPath,
}

impl<B: Backend> MetaLearner<B> {
    /// A learner starting from `weights`, after checking `config`.
    pub fn new(
        weights: &LinearWeights,
        config: MetaConfig,
        device: &B::Device,
    ) -> crate::error::Result<Self> {
        config.validate()?;
        config.adapt.validate_linear()?;
        weights.validate("initial weights")?;
        check_device_precision::<B>(device)?;
        let optim = match config.meta_optimizer {
            MetaOptimizer::Sgd => MetaOptim::Sgd(SgdConfig::new().init()),
            MetaOptimizer::Adam => MetaOptim::Adam(AdamConfig::new().init()),
        };
        Ok(Self {
            // Stored untracked: the hand-derived path never runs a backward pass that
            // would free the graph's record of a leaf, and nested autodiff takes fresh
            // leaves of its own (as `ModelLearner`).
            model: LinearModel::from_weights(weights, device).map(&mut crate::model::Untracked),
            optim,
            config,
            path: GradientPath::Auto,
        })
    }

    /// How the meta-gradient is taken ([`GradientPath::Auto`] by default: by hand).
    pub fn with_gradient_path(mut self, path: GradientPath) -> Self {
        self.path = path;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    /// The current initial weights, `[out, in]` and `[out]`, on the meta backend.
    pub fn model(&self) -> &LinearModel<MetaBackend<B>> {
        &self.model
    }

    /// The current initial weights in host memory.
    pub fn weights(&self) -> LinearWeights {
        self.model.to_weights()
    }

    /// One meta step: the meta-gradient on `batch`, then the meta-update. Returns the
    /// meta-gradient at the weights before the update.
    pub fn step(&mut self, batch: &TaskBatch<B>) -> MetaGradient<B> {
        self.step_recorded(batch, None)
    }

    pub(crate) fn step_recorded(
        &mut self,
        batch: &TaskBatch<B>,
        record: Option<&mut Recording<B>>,
    ) -> MetaGradient<B> {
        // A recording (`maml trace`) reports what nested autodiff tracks.
        let (gradient, params) = match (record, self.path) {
            (None, GradientPath::Auto) => {
                analytic_meta_gradient(&self.model, batch, &self.config.adapt)
            }
            (record, _) => meta_gradient_recorded(&self.model, batch, &self.config.adapt, record),
        };
        let lr = self.config.meta_lr;
        let model = self.model.clone();
        self.model = match &mut self.optim {
            MetaOptim::Sgd(o) => o.step(lr, model, params),
            MetaOptim::Adam(o) => o.step(lr, model, params),
        };
        gradient
    }
}
