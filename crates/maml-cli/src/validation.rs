//! Validation during training: the flags that choose the held-out tasks, and the scorer
//! that adapts the model of every checkpoint to them, writes `validation.csv` and keeps
//! the best-scoring checkpoint as `best.json` beside the last.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use clap::Args;
use maml_burn::maml_core::TaskData;
use maml_burn::maml_core::data::write_atomic;
use maml_burn::maml_core::train::guard::step_rng;
use maml_burn::maml_data::few_shot::ImageSource;
use maml_burn::maml_data::run::{TaskSource, TrainConfig, Validation};
use maml_burn::maml_data::stored::ModelCheckpoint;
use serde::Serialize;

use crate::error::CliError;
use crate::plot::{Series, Style};
use crate::scoring::{EvalWork, test_adapt};
use crate::weights::write_json;

/// The seed stream of the held-out tasks (apart from every training step's and from
/// `maml eval`'s).
const VALIDATION_STREAM: usize = usize::MAX - 2;

/// Held-out tasks per validation when validation is asked for by its data alone.
const DEFAULT_VAL_TASKS: usize = 100;

/// The flags of validation during training.
#[derive(Debug, Clone, Args)]
pub struct ValidationArgs {
    /// Validate at every checkpoint on this many held-out tasks, drawn once (fresh tasks
    /// of the family; Omniglot: of --val-alphabets or --val-data), and keep the best
    /// checkpoint as best.json [default with --val-alphabets or --val-data: 100].
    #[arg(long)]
    pub val_tasks: Option<usize>,
    /// Omniglot: validate on these alphabets of --data (comma-separated), apart from
    /// the training --alphabets.
    #[arg(long, value_delimiter = ',')]
    pub val_alphabets: Vec<String>,
    /// Omniglot: validate on the alphabets of this folder (or zip) instead.
    #[arg(long)]
    pub val_data: Option<PathBuf>,
}

impl ValidationArgs {
    /// The validation these flags ask for beside training on `tasks` (`None`: none).
    pub fn validation(&self, tasks: &TaskSource) -> Result<Option<Validation>, CliError> {
        let images = !self.val_alphabets.is_empty() || self.val_data.is_some();
        let num_tasks = match (self.val_tasks, images) {
            (Some(n), _) => n,
            (None, true) => DEFAULT_VAL_TASKS,
            (None, false) => return Ok(None),
        };
        let held = match tasks {
            TaskSource::Omniglot(train) => TaskSource::Omniglot(ImageSource {
                data: self
                    .val_data
                    .as_ref()
                    .map_or_else(|| train.data.clone(), |p| p.display().to_string()),
                alphabets: self.val_alphabets.clone(),
                shift: 0,
                ..train.clone()
            }),
            _ if images => {
                return Err(CliError::Usage(
                    "--val-alphabets and --val-data take --family omniglot".into(),
                ));
            }
            other => other.clone(),
        };
        Ok(Some(Validation {
            tasks: held,
            num_tasks,
        }))
    }
}

/// One validation: the held-out tasks' mean query loss and accuracy after adaptation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// The meta steps done when the checkpoint was taken.
    pub step: usize,
    /// Mean query loss after the training's inner steps (first order).
    pub loss: f64,
    /// Classification: mean query accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

impl Scored {
    /// Whether this scores better than `other`: higher accuracy, else lower loss.
    fn beats(&self, other: &Scored) -> bool {
        match (self.accuracy, other.accuracy) {
            (Some(a), Some(b)) => a > b,
            _ => self.loss < other.loss,
        }
    }
}

/// Scores every checkpoint of a run on its held-out tasks.
pub(crate) struct Validator {
    tasks: Vec<TaskData>,
    rows: Vec<Scored>,
    out: PathBuf,
}

const HEADER: &str = "step,val_loss,val_accuracy";

impl Validator {
    /// The validator of a run writing to `out` (`None` without validation): its tasks,
    /// and on a resumed run the validations before `start_step` from `validation.csv`.
    pub(crate) fn new(
        config: &TrainConfig,
        out: &Path,
        start_step: usize,
    ) -> Result<Option<Self>, CliError> {
        let Some(validation) = &config.validation else {
            return Ok(None);
        };
        validation.validate(&config.tasks)?;
        let family = validation.tasks.family()?;
        let tasks = family.sample(
            validation.num_tasks,
            &mut step_rng(config.seed, VALIDATION_STREAM),
        );
        let path = out.join("validation.csv");
        let rows = match start_step {
            0 => Vec::new(),
            _ => parse_rows(&read(&path)?, &path, start_step)?,
        };
        Ok(Some(Self {
            tasks,
            rows,
            out: out.to_path_buf(),
        }))
    }

    /// Adapts the checkpoint's model to the held-out tasks, records the score in
    /// `validation.csv` and, when no earlier checkpoint scored as well, writes the
    /// checkpoint as `best.json`.
    pub(crate) fn score<B: Backend>(
        &mut self,
        checkpoint: &ModelCheckpoint,
        device: &B::Device,
    ) -> Result<Scored, CliError> {
        let steps = checkpoint.config.meta.adapt.inner_steps;
        let adapt = test_adapt(checkpoint, Some(steps), None);
        let evaluated = checkpoint.model.kind().dispatch::<B, _>(EvalWork {
            checkpoint,
            pretrained: None,
            random: None,
            tasks: &self.tasks,
            adapt: &adapt,
            curve: true,
            device,
        })?;
        let scored = Scored {
            step: checkpoint.step,
            loss: *evaluated
                .maml
                .last()
                .expect("an adaptation curve has inner_steps + 1 >= 1 points"),
            accuracy: evaluated
                .accuracy
                .map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64),
        };
        let best = self.best().is_none_or(|b| scored.beats(b));
        self.rows.push(scored);
        write_atomic(&self.out.join("validation.csv"), csv(&self.rows).as_bytes())?;
        if best {
            write_json(&self.out.join("best.json"), checkpoint)?;
        }
        Ok(scored)
    }

    /// The best validation so far (the first of equals).
    pub(crate) fn best(&self) -> Option<&Scored> {
        self.rows
            .iter()
            .fold(None, |best: Option<&Scored>, r| match best {
                Some(b) if !r.beats(b) => Some(b),
                _ => Some(r),
            })
    }

    /// The validations as a series to plot: accuracy for classification, else loss.
    pub(crate) fn series(&self) -> Series {
        let tasks = self.tasks.len();
        Series {
            style: Style::Markers,
            name: format!("validation ({tasks} held-out tasks)"),
            points: self
                .rows
                .iter()
                .map(|r| (r.step as f64, r.accuracy.unwrap_or(r.loss)))
                .collect(),
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read {} to resume the run's validation: {e}",
            path.display()
        ))
    })
}

/// The text of `validation.csv`: `step,val_loss,val_accuracy` (empty accuracy for
/// regression).
fn csv(rows: &[Scored]) -> String {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        let accuracy = r.accuracy.map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(text, "{},{:e},{accuracy}", r.step, r.loss);
    }
    text
}

/// The rows of a `validation.csv` before step `until`.
fn parse_rows(text: &str, path: &Path, until: usize) -> Result<Vec<Scored>, CliError> {
    let bad = |line: usize, why: String| {
        CliError::Usage(format!(
            "{}: line {line} is not a validation row ({why})",
            path.display()
        ))
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(bad(1, format!("expected the header {HEADER}")));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let [step, loss, accuracy] = cells[..] else {
            return Err(bad(i + 2, format!("{} columns, not 3", cells.len())));
        };
        let number = |cell: &str| {
            cell.parse::<f64>()
                .map_err(|_| bad(i + 2, format!("{cell:?} is not a number")))
        };
        let step: usize = step
            .parse()
            .map_err(|_| bad(i + 2, format!("step {step:?} is not a whole number")))?;
        if step >= until {
            break;
        }
        rows.push(Scored {
            step,
            loss: number(loss)?,
            accuracy: match accuracy {
                "" => None,
                a => Some(number(a)?),
            },
        });
    }
    Ok(rows)
}
