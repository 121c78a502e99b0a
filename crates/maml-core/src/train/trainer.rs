//! Meta-training: where tasks come from, one configuration for a whole run, and the
//! guard that catches divergence.

use burn::config::Config;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::config::MetaConfig;
use crate::data::TaskData;
use crate::data::families::{
    BlobsFamily, FixedTasks, LinearFamily, SeedFamily, SinusoidFamily, TaskFamily,
};
use crate::data::few_shot::ImageSource;
use crate::error::MamlError;

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
    /// The model: an MLP or a conv net; `None` is the linear model (an MLP of one layer,
    /// Kaiming-normal initial weights).
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
        if let TaskSource::Omniglot(source) = &self.tasks {
            source.validate()?;
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
