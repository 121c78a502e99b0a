//! Meta-training: where tasks come from, one configuration for a whole run, a trainer
//! that catches divergence, and evaluation of learned initial weights.

use burn::config::Config;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::algo::maml::{adaptation_curve, mean_loss};
use crate::config::AdaptConfig;
use crate::config::MetaConfig;
use crate::data::families::{
    BlobsFamily, FixedTasks, LinearFamily, SeedFamily, SinusoidFamily, TaskFamily,
};
use crate::data::few_shot::ImageSource;
use crate::data::tasks::TaskBatch;
use crate::data::{LinearWeights, TaskData};
use crate::error::MamlError;
use crate::model::linear::{to_f64, weights_to_tensors};
use crate::train::learner::MetaLearner;

/// Where the meta-batches of a run come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum TaskSource {
    /// The seed's task.
    Seed,
    /// Linear-regression tasks.
    Linear(LinearFamily),
    /// The MAML paper's sinusoid regression.
    Sinusoid(SinusoidFamily),
    /// N-way classification of Gaussian clusters.
    Blobs(BlobsFamily),
    /// N-way K-shot classification of images (Omniglot).
    Omniglot(ImageSource),
    /// The `tasks` of a problem file (a fixed task set).
    File {
        /// The problem file.
        path: String,
    },
}

impl TaskSource {
    /// The family this source describes (reading the file for `File`).
    pub fn family(&self) -> crate::error::Result<Box<dyn TaskFamily>> {
        Ok(match self {
            TaskSource::Seed => Box::new(SeedFamily),
            TaskSource::Linear(family) => {
                family.validate()?;
                Box::new(family.clone())
            }
            TaskSource::Sinusoid(family) => {
                family.validate()?;
                Box::new(family.clone())
            }
            TaskSource::Blobs(family) => {
                family.validate()?;
                Box::new(family.clone())
            }
            TaskSource::Omniglot(source) => Box::new(source.family()?),
            TaskSource::File { path } => Box::new(FixedTasks::new(load_tasks(path)?)?),
        })
    }
}

/// Reads the `tasks` of a task-set file: a problem file, or a file with just `tasks`.
pub fn load_tasks(path: &str) -> crate::error::Result<Vec<TaskData>> {
    Ok(crate::data::TaskSetFile::load(path)?.tasks)
}

/// Everything a meta-training run depends on. Saved as `config.json` beside its outputs.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Inner loop and meta-update.
    pub meta: MetaConfig,
    /// Where the tasks come from.
    pub tasks: TaskSource,
    /// Tasks per meta-batch (a fixed task set: at most all of them).
    #[config(default = 25)]
    pub meta_batch: usize,
    /// Number of meta steps.
    #[config(default = 500)]
    pub meta_steps: usize,
    /// Seed of the initial weights and of every meta-batch.
    #[config(default = 0)]
    pub seed: u64,
    /// The model: `None` is the linear model on its fast path (`[W | b]^T`); an MLP (a
    /// linear model given as one layer) or a conv net runs on the model-agnostic core.
    pub model: Option<crate::model::presets::ModelConfig>,
    /// Stop as diverged when the meta-loss rises above this many times its lowest value
    /// so far (`None`, the library's default: only non-finite values stop a run; the
    /// `maml` tool sets 1e6).
    pub divergence_threshold: Option<f64>,
}

/// Watches the meta-loss of a run: non-finite values, a rise above the threshold times
/// the lowest value so far, and how many steps in a row it has risen.
#[derive(Debug, Clone)]
pub struct DivergenceGuard {
    threshold: Option<f64>,
    lowest: f64,
    last: f64,
    rising: usize,
}

impl DivergenceGuard {
    /// A guard with `threshold` (`None`: off).
    pub fn new(threshold: Option<f64>) -> Self {
        Self {
            threshold,
            lowest: f64::INFINITY,
            last: f64::INFINITY,
            rising: 0,
        }
    }

    /// Checks the meta-loss of step `step`; `before` is the step's query loss before
    /// adaptation (NaN if unknown). The reference is the lowest of every meta-loss and
    /// every query loss before adaptation seen so far, this step's included: a run whose
    /// inner loop blows up from the first step is caught too.
    pub fn check(&mut self, step: usize, meta_loss: f64, before: f64) -> crate::error::Result<()> {
        if before.is_finite() {
            self.lowest = self.lowest.min(before);
        }
        if !meta_loss.is_finite() {
            return Err(MamlError::Diverged {
                step,
                what: "meta-loss",
                value: meta_loss,
            });
        }
        if let Some(threshold) = self.threshold
            && self.lowest.is_finite()
            && meta_loss > threshold * self.lowest.max(f64::MIN_POSITIVE)
        {
            return Err(MamlError::DivergedAbove {
                step,
                value: meta_loss,
                lowest: self.lowest,
                threshold,
            });
        }
        self.rising = if meta_loss > self.last {
            self.rising + 1
        } else {
            0
        };
        self.last = meta_loss;
        self.lowest = self.lowest.min(meta_loss);
        Ok(())
    }

    /// For how many steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.rising
    }
}

impl TrainConfig {
    /// Checks every hyperparameter.
    pub fn validate(&self) -> crate::error::Result<()> {
        self.meta.validate()?;
        if let Some(t) = self.divergence_threshold
            && !(t.is_finite() && t > 1.0)
        {
            return Err(MamlError::InvalidHyperparameter {
                name: "divergence_threshold",
                value: t.to_string(),
                reason: "must be a finite number above 1 (or off)",
            });
        }
        if self.meta_batch == 0 {
            return Err(MamlError::InvalidHyperparameter {
                name: "meta_batch",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// The RNG of meta step `step` of a run with `seed`: each step's tasks depend on
/// `(seed, step)` alone, so a resumed run draws the same tasks as an uninterrupted one.
pub fn step_rng(seed: u64, step: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// What one meta step measured, before the update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepMetrics {
    /// The meta step (0-based).
    pub step: usize,
    /// Mean query loss after adaptation (the meta-loss).
    pub meta_loss: f64,
    /// Mean query loss of the initial weights, before adaptation.
    pub query_loss_before: f64,
    /// Mean query loss after adaptation (equal to `meta_loss`).
    pub query_loss_after: f64,
    /// Mean query accuracy after adaptation, for classification.
    pub query_accuracy: Option<f64>,
}

/// Runs meta-training steps.
pub struct Trainer<B: Backend> {
    learner: MetaLearner<B>,
    family: Box<dyn TaskFamily>,
    config: TrainConfig,
    step: usize,
    device: B::Device,
    guard: DivergenceGuard,
}

impl<B: Backend> Trainer<B> {
    /// A trainer for `config` with tasks from `family`, starting at meta step
    /// `start_step` from `initial` (or Kaiming-normal weights drawn with `config.seed`).
    pub fn new(
        config: TrainConfig,
        family: Box<dyn TaskFamily>,
        initial: Option<LinearWeights>,
        start_step: usize,
        device: &B::Device,
    ) -> crate::error::Result<Self> {
        config.validate()?;
        let initial = initial
            .unwrap_or_else(|| LinearWeights::kaiming(family.d_in(), family.d_out(), config.seed));
        if initial.d_in() != family.d_in() || initial.d_out() != family.d_out() {
            return Err(MamlError::ModelShape {
                path: "initial weights".into(),
                found_out: initial.d_out(),
                found_in: initial.d_in(),
                want_out: family.d_out(),
                want_in: family.d_in(),
            });
        }
        Ok(Self {
            learner: MetaLearner::new(&initial, config.meta.clone(), device)?,
            family,
            guard: DivergenceGuard::new(config.divergence_threshold),
            config,
            step: start_step,
            device: device.clone(),
        })
    }

    /// The next meta step's index.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// The current initial weights.
    pub fn weights(&self) -> LinearWeights {
        self.learner.weights()
    }

    /// For how many meta steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.guard.rising_steps()
    }

    /// The task family.
    pub fn family(&self) -> &dyn TaskFamily {
        self.family.as_ref()
    }

    /// One meta step. A non-finite meta-loss or meta-gradient is
    /// [`MamlError::Diverged`]; the trainer's weights are then not to be trusted.
    pub fn step(&mut self) -> crate::error::Result<StepMetrics> {
        let step = self.step;
        let mut rng = step_rng(self.config.seed, step);
        let tasks = self.family.sample(self.config.meta_batch, &mut rng);
        let batch = TaskBatch::<B>::from_tasks(
            &tasks,
            self.family.d_out(),
            self.config.meta.adapt.loss,
            &self.device,
        );
        let model = self.learner.model();
        let before = mean_loss(
            model.weight.val().inner(),
            model.bias.val().inner(),
            &batch.query,
        );
        let gradient = self.learner.step(&batch);
        let meta_loss = to_f64(gradient.meta_loss)[0];
        let before = to_f64(before)[0];
        self.guard.check(step, meta_loss, before)?;
        let grad = to_f64(gradient.weight)
            .into_iter()
            .chain(to_f64(gradient.bias))
            .find(|g| !g.is_finite());
        if let Some(value) = grad {
            return Err(MamlError::Diverged {
                step,
                what: "meta-gradient",
                value,
            });
        }
        self.step += 1;
        Ok(StepMetrics {
            step,
            meta_loss,
            query_loss_before: before,
            query_loss_after: meta_loss,
            query_accuracy: None,
        })
    }
}

/// Query loss before and after adaptation on a set of tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Number of tasks.
    pub tasks: usize,
    /// Mean query loss after `k` inner steps, `k = 0..=inner_steps`.
    pub curve: Vec<f64>,
    /// Mean query loss before adaptation (`curve[0]`).
    pub before: f64,
    /// Mean query loss after `inner_steps` steps (`curve[inner_steps]`).
    pub after: f64,
}

/// Evaluates initial weights on `tasks` with the inner loop of `config`.
pub fn evaluate<B: Backend>(
    weights: &LinearWeights,
    tasks: &[TaskData],
    config: &AdaptConfig,
    device: &B::Device,
) -> crate::error::Result<EvalReport> {
    config.validate()?;
    weights.validate("weights")?;
    crate::data::validate_tasks(tasks, weights.d_in(), weights.d_out())?;
    crate::model::linear::check_device_precision::<B>(device)?;
    let batch = TaskBatch::<B>::from_tasks(tasks, weights.d_out(), config.loss, device);
    let (w, b) = weights_to_tensors::<B>(weights, device);
    let curve = adaptation_curve(w, b, &batch, config);
    Ok(EvalReport {
        tasks: tasks.len(),
        before: curve[0],
        after: *curve
            .last()
            .expect("the curve has inner_steps + 1 >= 1 points"),
        curve,
    })
}

/// What a checkpoint file holds: the initial weights after `step` meta steps of the run
/// configured by `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always [`Checkpoint::FORMAT`].
    pub format: String,
    /// Meta steps done.
    pub step: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The learned initial weights.
    pub weights: LinearWeights,
}

impl Checkpoint {
    /// The format tag.
    pub const FORMAT: &'static str = "maml-burn checkpoint v1";

    /// A checkpoint of `weights` after `step` steps.
    pub fn new(step: usize, config: TrainConfig, weights: LinearWeights) -> Self {
        Self {
            format: Self::FORMAT.into(),
            step,
            config,
            weights,
        }
    }

    /// Reads and checks a checkpoint: format tag, finite weights of a consistent shape.
    pub fn load(path: &std::path::Path) -> crate::error::Result<Self> {
        let checkpoint: Checkpoint = crate::data::read_json(path)?;
        let name = path.display().to_string();
        if checkpoint.format != Self::FORMAT {
            return Err(MamlError::UnknownName {
                kind: "checkpoint format",
                value: checkpoint.format,
                expected: Self::FORMAT,
            });
        }
        checkpoint.weights.validate(&format!("{name}: weights"))?;
        checkpoint.config.validate()?;
        Ok(checkpoint)
    }

    /// Checks that the weights fit a model `in` -> `out`.
    pub fn check_shape(&self, path: &str, d_in: usize, d_out: usize) -> crate::error::Result<()> {
        if self.weights.d_in() != d_in || self.weights.d_out() != d_out {
            return Err(MamlError::ModelShape {
                path: path.into(),
                found_out: self.weights.d_out(),
                found_in: self.weights.d_in(),
                want_out: d_out,
                want_in: d_in,
            });
        }
        Ok(())
    }
}
