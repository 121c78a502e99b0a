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
    /// Held-out tasks scored at every checkpoint (`None`: no validation).
    pub validation: Option<Validation>,
}

/// Validation during training: a fixed set of held-out tasks, drawn once, scored after
/// adaptation at every checkpoint; the best-scoring checkpoint is kept beside the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Where the held-out tasks come from: for Omniglot, other alphabets of the same data;
    /// for a generated family, the same family (tasks apart from every training step's).
    pub tasks: TaskSource,
    /// How many held-out tasks.
    pub num_tasks: usize,
}

impl Validation {
    /// Checks the held-out source against the training one: at least one task, a
    /// family that draws fresh tasks, and no alphabet shared with the training split.
    pub fn validate(&self, training: &TaskSource) -> maml_core::error::Result<()> {
        if self.num_tasks == 0 {
            return Err(MamlError::InvalidHyperparameter {
                name: "validation.num_tasks",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        match (&self.tasks, training) {
            (TaskSource::File { .. } | TaskSource::Seed, _) => {
                Err(MamlError::InvalidHyperparameter {
                    name: "validation.tasks",
                    value: format!("{:?}", self.tasks),
                    reason: "validation needs a family that draws held-out tasks, not a \
                             fixed task set",
                })
            }
            (TaskSource::Omniglot(held), TaskSource::Omniglot(train)) => {
                held.validate()?;
                if held.data != train.data {
                    // A validation folder of its own: every alphabet in it is held out.
                    return Ok(());
                }
                if held.alphabets.is_empty() {
                    return Err(MamlError::InvalidHyperparameter {
                        name: "validation alphabets",
                        value: "all".into(),
                        reason: "validation on the training data needs held-out alphabets",
                    });
                }
                let shared = match train.alphabets.is_empty() {
                    true => held.alphabets.first(),
                    false => held.alphabets.iter().find(|a| train.alphabets.contains(a)),
                };
                match shared {
                    Some(alphabet) => Err(MamlError::InvalidHyperparameter {
                        name: "validation alphabet",
                        value: alphabet.clone(),
                        reason: "is also a training alphabet (training without --alphabets \
                                 takes them all)",
                    }),
                    None => Ok(()),
                }
            }
            (held, train) if std::mem::discriminant(held) != std::mem::discriminant(train) => {
                Err(MamlError::InvalidHyperparameter {
                    name: "validation.tasks",
                    value: format!("{held:?}"),
                    reason: "must be of the training family",
                })
            }
            _ => Ok(()),
        }
    }
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
        if let Some(validation) = &self.validation {
            validation.validate(&self.tasks)?;
        }
        Ok(())
    }
}
