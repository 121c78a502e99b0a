//! The outer loop: a meta-learner that owns the initial weights and updates them with a
//! meta-optimiser (Burn's SGD or Adam) after each meta-gradient.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{AdaptConfig, check_lr};
use crate::data::LinearWeights;
use crate::error::MamlError;
use crate::learn::GradientPath;
use crate::maml::{
    MetaBackend, MetaGradient, Recording, analytic_meta_gradient, meta_gradient_recorded,
};
use crate::model::{LinearModel, check_device_precision};
use crate::tasks::TaskBatch;

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
    fn try_from(s: String) -> crate::error::Result<Self> {
        s.parse()
    }
}

impl FromStr for MetaOptimizer {
    type Err = MamlError;
    fn from_str(s: &str) -> crate::error::Result<Self> {
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
    pub fn validate(&self) -> crate::error::Result<()> {
        self.adapt.validate()?;
        check_lr("meta_lr", self.meta_lr)
    }
}

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
            model: LinearModel::from_weights(weights, device).map(&mut crate::module::Untracked),
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
