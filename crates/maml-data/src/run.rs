//! One meta-training run of a built-in model: where its tasks come from
//! ([`TaskSource`], images included) and its whole configuration ([`TrainConfig`]),
//! saved beside its outputs and inside its checkpoints.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use maml_core::config::MetaConfig;
use maml_core::data::TaskData;
use maml_core::data::families::{
    BlobsFamily, FixedTasks, LinearFamily, SeedFamily, SinusoidFamily, TaskFamily,
};
use maml_core::error::MamlError;

use crate::few_shot::ImageSource;

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
    pub fn family(&self) -> maml_core::error::Result<Box<dyn TaskFamily>> {
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
pub fn load_tasks(path: &str) -> maml_core::error::Result<Vec<TaskData>> {
    Ok(maml_core::data::TaskSetFile::load(path)?.tasks)
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
    pub model: Option<maml_core::model::presets::ModelConfig>,
    /// Stop as diverged when the meta-loss rises above this many times its lowest value
    /// so far (`None`, the library's default: only non-finite values stop a run; the
    /// `maml` tool sets 1e6).
    pub divergence_threshold: Option<f64>,
    /// MAML++'s schedules by meta step (derivative-order annealing, multi-step loss
    /// annealing, cosine annealing of the meta learning rate); `None`: none.
    pub schedule: Option<maml_core::Schedule>,
}

impl TrainConfig {
    /// Checks every hyperparameter.
    pub fn validate(&self) -> maml_core::error::Result<()> {
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
        if let Some(schedule) = &self.schedule {
            schedule.validate()?;
        }
        if let TaskSource::Omniglot(source) = &self.tasks {
            source.validate()?;
        }
        Ok(())
    }
}
