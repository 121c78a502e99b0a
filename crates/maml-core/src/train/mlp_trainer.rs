//! Meta-training of any built-in model on the model-agnostic core: an MLP (hidden sizes
//! and activation configurable; no hidden layer is the linear model), MAML or Meta-SGD.

use burn::module::AutodiffModule;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::batch::MetaBatch;
use crate::error::MamlError;

use crate::algo::learn::{Fast, ModelLearner};
use crate::data::families::TaskFamily;
use crate::model::MetaModel;
use crate::model::linear::{check_device_precision, to_f64};
use crate::model::mlp::{Activation, Mlp, MlpWeights};
use crate::model::{MetaBackend, SecondOrder};
use crate::train::problems::ModelSpec;
use crate::train::trainer::{DivergenceGuard, StepMetrics, TrainConfig, step_rng};

type Learner<B> = ModelLearner<B, Mlp<SecondOrder<B>>>;

/// Runs meta-training steps of an MLP.
pub struct MlpTrainer<B: Backend> {
    learner: Learner<B>,
    family: Box<dyn TaskFamily>,
    config: TrainConfig,
    activation: Activation,
    step: usize,
    device: B::Device,
    guard: DivergenceGuard,
}

impl<B: Backend> MlpTrainer<B> {
    /// A trainer for `config` (whose `model` must be set) with tasks from `family`,
    /// starting at meta step `start_step` from `initial` weights (and Meta-SGD step
    /// sizes), or from PyTorch's default initialisation drawn with `config.seed`.
    pub fn new(
        config: TrainConfig,
        family: Box<dyn TaskFamily>,
        initial: Option<(MlpWeights, Option<MlpWeights>)>,
        start_step: usize,
        device: &B::Device,
    ) -> crate::error::Result<Self> {
        config.validate()?;
        check_device_precision::<B>(device)?;
        let spec = config
            .model
            .clone()
            .ok_or(MamlError::InvalidHyperparameter {
                name: "model",
                value: "none".into(),
                reason: "the MLP trainer needs a model (hidden sizes, activation)",
            })?;
        spec.validate()?;
        let sizes = spec.sizes(family.d_in(), family.d_out());
        let (weights, step_sizes) =
            initial.unwrap_or_else(|| (MlpWeights::uniform_fan_in(&sizes, config.seed), None));
        weights.validate("initial weights")?;
        if weights.sizes() != sizes {
            return Err(MamlError::Shape {
                location: "initial weights".into(),
                detail: format!(
                    "layer sizes {:?}, but the model and task family need {sizes:?}",
                    weights.sizes()
                ),
            });
        }
        let model = Mlp::<B>::from_weights(&weights, spec.activation, device);
        let mut learner = Learner::<B>::new(model, config.meta.clone())?;
        if let Some(sizes) = step_sizes {
            weights.check_same_shape(&sizes, "step sizes")?;
            learner = learner.with_step_sizes(Mlp::from_weights(&sizes, spec.activation, device));
        }
        Ok(Self {
            learner,
            family,
            guard: DivergenceGuard::new(config.divergence_threshold),
            config,
            activation: spec.activation,
            step: start_step,
            device: device.clone(),
        })
    }

    /// The next meta step's index.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// The current initial weights.
    pub fn weights(&self) -> MlpWeights {
        self.learner.model().to_weights(0)
    }

    /// Meta-SGD's step sizes, if learned.
    pub fn step_sizes(&self) -> Option<MlpWeights> {
        self.learner.step_sizes().map(|s| s.to_weights(0))
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// For how many meta steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.guard.rising_steps()
    }

    /// The task family.
    pub fn family(&self) -> &dyn TaskFamily {
        self.family.as_ref()
    }

    /// One meta step. A non-finite meta-loss, or one above the divergence threshold, is
    /// an error ([`MamlError::Diverged`], [`MamlError::DivergedAbove`]).
    pub fn step(&mut self) -> crate::error::Result<StepMetrics> {
        let step = self.step;
        let mut rng = step_rng(self.config.seed, step);
        let tasks = self.family.sample(self.config.meta_batch, &mut rng);
        let batch = MetaBatch::<B>::from_tasks(
            &tasks,
            self.family.d_out(),
            self.config.meta.adapt.loss,
            &self.device,
        );
        // On the plain backend: a forward pass of the tracked initial weights that is
        // never differentiated would stay in Burn's autodiff graph (the MLP's
        // meta-gradient runs no backward pass there to clean it up).
        let initial = self.learner.model().valid();
        let before = batch
            .query
            .task_losses(MetaModel::forward(&initial, batch.query.x.clone()))
            .mean();
        let gradient = self.learner.step(&batch);
        let [meta_loss, before] = [gradient.meta_loss, before].map(|t| to_f64(t)[0]);
        self.guard.check(step, meta_loss, before)?;
        self.step += 1;
        Ok(StepMetrics {
            step,
            meta_loss,
            query_loss_before: before,
            query_loss_after: meta_loss,
        })
    }
}

impl<B: Backend> MlpTrainer<B> {
    /// One data-parallel meta step as worker `rank` of `workers`: every worker draws the
    /// same meta-batch (same seeded stream), takes its shard
    /// ([`crate::data::batch::shard_range`]), and `all_reduce_sum` sums the workers' scaled
    /// shares ([`ModelLearner::step_shard`]); every worker applies the same update and
    /// sees the same meta-loss, so all stop together on divergence. `query_loss_before`
    /// is not computed (NaN).
    pub fn step_parallel(
        &mut self,
        rank: usize,
        workers: usize,
        all_reduce_sum: impl FnOnce(Tensor<B, 1>) -> std::result::Result<Tensor<B, 1>, String>,
    ) -> crate::error::Result<StepMetrics> {
        let step = self.step;
        let mut rng = step_rng(self.config.seed, step);
        let tasks = self.family.sample(self.config.meta_batch, &mut rng);
        let range = crate::data::batch::shard_range(tasks.len(), workers, rank);
        if range.is_empty() {
            return Err(MamlError::InvalidHyperparameter {
                name: "workers",
                value: workers.to_string(),
                reason: "more workers than tasks in a meta-batch: every worker needs a task",
            });
        }
        let weight = range.len() as f64 / tasks.len() as f64;
        let batch = MetaBatch::<B>::from_tasks(
            &tasks[range],
            self.family.d_out(),
            self.config.meta.adapt.loss,
            &self.device,
        );
        let meta_loss = self
            .learner
            .step_shard(&batch, weight, all_reduce_sum)
            .map_err(|detail| MamlError::Distributed { step, detail })?;
        self.guard.check(step, meta_loss, f64::NAN)?;
        self.step += 1;
        Ok(StepMetrics {
            step,
            meta_loss,
            query_loss_before: f64::NAN,
            query_loss_after: meta_loss,
        })
    }
}

/// What an MLP checkpoint file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpCheckpoint {
    /// Always [`MlpCheckpoint::FORMAT`].
    pub format: String,
    /// Meta steps done.
    pub step: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The learned initial weights (version-2 layout).
    pub weights: MlpWeights,
    /// Meta-SGD's learned step sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_sizes: Option<MlpWeights>,
}

impl MlpCheckpoint {
    /// The format tag.
    pub const FORMAT: &'static str = "maml-burn checkpoint v2 (mlp)";

    /// Reads and checks a checkpoint.
    pub fn load(path: &std::path::Path) -> crate::error::Result<Self> {
        let checkpoint: Self = crate::data::read_json(path)?;
        if checkpoint.format != Self::FORMAT {
            return Err(MamlError::UnknownName {
                kind: "checkpoint format",
                value: checkpoint.format,
                expected: Self::FORMAT,
            });
        }
        let name = path.display().to_string();
        checkpoint.weights.validate(&format!("{name}: weights"))?;
        if let Some(sizes) = &checkpoint.step_sizes {
            sizes.validate(&format!("{name}: step_sizes"))?;
            checkpoint
                .weights
                .check_same_shape(sizes, &format!("{name}: step_sizes"))?;
        }
        checkpoint.config.validate()?;
        Ok(checkpoint)
    }
}

/// The mean query loss on `tasks` after `k = 0..=adapt.inner_steps` first-order inner
/// steps from an MLP (with Meta-SGD step sizes when given): an adaptation curve.
pub fn mlp_eval_curve<B: Backend>(
    model: &ModelSpec,
    step_sizes: Option<&MlpWeights>,
    tasks: &[crate::data::TaskData],
    adapt: &crate::config::AdaptConfig,
    device: &B::Device,
) -> crate::error::Result<Vec<f64>> {
    let (weights, activation) = (&model.weights(), model.activation);
    adapt.validate()?;
    weights.validate("weights")?;
    check_device_precision::<B>(device)?;
    crate::data::validate_tasks(tasks, weights.d_in(), weights.d_out())?;
    let batch = MetaBatch::<B>::from_tasks(tasks, weights.d_out(), adapt.loss, device);
    let lift = |w: &MlpWeights| Mlp::<MetaBackend<B>>::from_weights(w, activation, device);
    let sizes = step_sizes.map(lift);
    Ok(crate::algo::learn::model_adaptation_curve::<
        B,
        Mlp<SecondOrder<B>>,
    >(&lift(weights), sizes.as_ref(), &batch, adapt))
}

/// Predictions at `x [n][in]` of an MLP adapted to one task's support set, after
/// each number of first-order inner steps in `steps` (e.g. `[0, 1, 10]`): `[steps][n][out]`.
pub fn mlp_adapted_predictions<B: Backend>(
    model: &ModelSpec,
    step_sizes: Option<&MlpWeights>,
    task: &crate::data::TaskData,
    x: &[Vec<f64>],
    steps: &[usize],
    adapt: &crate::config::AdaptConfig,
    device: &B::Device,
) -> crate::error::Result<Vec<Vec<Vec<f64>>>> {
    use crate::model::MetaModel;
    let (weights, activation) = (&model.weights(), model.activation);
    adapt.validate()?;
    check_device_precision::<B>(device)?;
    let d_out = weights.d_out();
    let probe = crate::data::TaskData {
        support: task.support.clone(),
        query: crate::data::SetData {
            x: x.to_vec(),
            y: None,
        },
    };
    crate::data::validate_tasks(std::slice::from_ref(&probe), weights.d_in(), d_out)?;
    let batch = MetaBatch::<B>::from_tasks(std::slice::from_ref(&probe), d_out, adapt.loss, device);
    let mut out = Vec::new();
    for &k in steps {
        let config = adapt
            .clone()
            .with_inner_steps(k)
            .with_order(crate::config::Order::First);
        let model = Mlp::<MetaBackend<B>>::from_weights(weights, activation, device);
        let sizes = step_sizes.map(|s| Mlp::<MetaBackend<B>>::from_weights(s, activation, device));
        let fast = crate::algo::learn::adapt_model::<B, Mlp<SecondOrder<B>>>(
            &model,
            sizes.as_ref(),
            &batch.support,
            &config,
        );
        let Fast::Batched(fast) = fast else {
            unreachable!("the MLP is task-batched")
        };
        let pred = MetaModel::forward(&fast, Tensor::from_inner(batch.query.x.clone())).inner();
        let values = to_f64(pred);
        out.push(values.chunks(d_out).map(<[f64]>::to_vec).collect());
    }
    Ok(out)
}
