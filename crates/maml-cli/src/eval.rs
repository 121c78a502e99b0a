//! `maml eval` and `maml optimum`.

use std::path::PathBuf;

use burn::prelude::Backend;
use clap::Args;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::closed_form::optimum;
use maml_burn::maml_core::data::TaskSetFile;
use maml_burn::maml_core::train::trainer::{Checkpoint, load_tasks, step_rng};
use maml_burn::maml_core::{
    AdaptConfig, EvalReport, LinearWeights, Loss, Order, TaskData, evaluate,
};
use serde::Serialize;

use crate::error::CliError;
use crate::{BackendArgs, parse, print_json};

/// `maml eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint written by `maml train` (DIR/checkpoint.json).
    pub checkpoint: PathBuf,
    /// Evaluate on the tasks of a problem file instead of fresh tasks from the
    /// checkpoint's task family.
    #[arg(long)]
    pub tasks: Option<PathBuf>,
    /// Number of fresh tasks.
    #[arg(long, default_value_t = 100)]
    pub num_tasks: usize,
    /// Inner steps K (default: the checkpoint's).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner learning rate (default: the checkpoint's).
    #[arg(long, allow_hyphen_values = true)]
    pub inner_lr: Option<f64>,
    /// Seed of the fresh tasks and of the random initialisation compared against.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// MLP checkpoints of the sinusoid family: also draw the MAML paper's Figure 2
    /// (figure2.svg beside the checkpoint) and Figure 3 (adaptation.svg).
    #[arg(long)]
    pub figures: bool,
    /// Image checkpoints: the official one-shot runs (runNN/training, runNN/test,
    /// class_labels.txt), a folder or a zip; prints each run's error and the mean.
    #[arg(long, conflicts_with = "data")]
    pub runs: Option<PathBuf>,
    /// Image checkpoints: draw the tasks from these image classes (a folder in the
    /// Omniglot layout or a zip of one, e.g. held-out alphabets) instead of the training
    /// data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: classes per task [default: the checkpoint's].
    #[arg(long)]
    pub ways: Option<usize>,
    /// With --data: support images per class [default: the checkpoint's].
    #[arg(long)]
    pub shots: Option<usize>,
    /// With --data: query images per class [default: the checkpoint's].
    #[arg(long)]
    pub queries: Option<usize>,
    /// With --data: each character at 0, 90, 180 and 270 degrees is a class of its own.
    #[arg(long)]
    pub rotations: bool,
    /// With --data: only these alphabets, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub alphabets: Vec<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Serialize)]
struct EvalRow {
    init: String,
    #[serde(flatten)]
    report: EvalReport,
}

#[derive(Debug, Serialize)]
struct EvalOutput {
    checkpoint: String,
    meta_steps: usize,
    inner_steps: usize,
    inner_lr: f64,
    rows: Vec<EvalRow>,
}

struct EvalJob {
    inits: Vec<(String, LinearWeights)>,
    tasks: Vec<TaskData>,
    adapt: AdaptConfig,
}

impl BackendJob for EvalJob {
    type Output = Vec<EvalRow>;
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Vec<EvalRow>, CliError> {
        self.inits
            .into_iter()
            .map(|(init, w)| {
                Ok(EvalRow {
                    init,
                    report: evaluate::<B>(&w, &self.tasks, &self.adapt, device)?,
                })
            })
            .collect()
    }
}

/// `maml eval` of a linear checkpoint (`main` sends the model-agnostic core's to
/// [`crate::eval_core::eval_core`]).
pub fn eval(args: EvalArgs) -> Result<(), CliError> {
    if args.runs.is_some() || args.data.is_some() {
        return Err(CliError::Usage(
            "--runs and --data are for image checkpoints (maml train --family omniglot)".into(),
        ));
    }
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    let name = args.checkpoint.display().to_string();
    let (d_in, d_out) = (checkpoint.weights.d_in(), checkpoint.weights.d_out());
    let tasks = match &args.tasks {
        Some(path) => load_tasks(&path.display().to_string())?,
        None => {
            if args.num_tasks == 0 {
                return Err(CliError::Usage(
                    "invalid --num-tasks 0: must be at least 1".into(),
                ));
            }
            let family = checkpoint.config.tasks.family()?;
            checkpoint.check_shape(&name, family.d_in(), family.d_out())?;
            family.sample(args.num_tasks, &mut step_rng(args.rng_seed, usize::MAX - 1))
        }
    };
    let mut adapt = AdaptConfig {
        order: Order::First,
        ..checkpoint.config.meta.adapt.clone()
    };
    if let Some(k) = args.inner_steps {
        adapt.inner_steps = k;
    }
    if let Some(lr) = args.inner_lr {
        adapt.inner_lr = lr;
    }
    adapt.validate()?;
    let job = EvalJob {
        inits: vec![
            (
                format!("checkpoint (step {})", checkpoint.step),
                checkpoint.weights.clone(),
            ),
            (
                format!("random init (Kaiming, seed {})", args.rng_seed),
                LinearWeights::kaiming(d_in, d_out, args.rng_seed),
            ),
        ],
        tasks,
        adapt: adapt.clone(),
    };
    let rows = dispatch_with(
        args.backend.backend,
        args.backend.precision,
        args.backend.threads,
        job,
    )?;
    let output = EvalOutput {
        checkpoint: name,
        meta_steps: checkpoint.step,
        inner_steps: adapt.inner_steps,
        inner_lr: adapt.inner_lr,
        rows,
    };
    if args.json {
        print_json(&output);
    } else {
        crate::emit(&format!(
            "query loss on {} tasks, before and after {} inner steps (inner_lr {}):",
            output.rows[0].report.tasks, output.inner_steps, output.inner_lr
        ));
        crate::emit(&format!(
            "{:<36} {:>14} {:>14}",
            "initial weights", "before", "after"
        ));
        for row in &output.rows {
            crate::emit(&format!(
                "{:<36} {:>14.6e} {:>14.6e}",
                row.init, row.report.before, row.report.after
            ));
        }
    }
    Ok(())
}

/// `maml optimum` arguments.
#[derive(Debug, Args)]
pub struct OptimumArgs {
    /// A task-set file (`tasks`, or a whole problem file) whose tasks form the fixed set.
    #[arg(long)]
    pub tasks: PathBuf,
    /// Inner steps K (default: the file's, else 5 as `maml train`).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner learning rate (default: the file's, else 0.1 as `maml train`).
    #[arg(long, allow_hyphen_values = true)]
    pub inner_lr: Option<f64>,
    /// mse or sse (default: the file's, else mse as `maml train`).
    #[arg(long, value_parser = parse::<Loss>)]
    pub loss: Option<Loss>,
}

/// `maml optimum`.
pub fn optimum_cmd(args: OptimumArgs) -> Result<(), CliError> {
    let set = TaskSetFile::load(&args.tasks)?;
    let adapt = AdaptConfig::new(args.inner_lr.or(set.inner_lr).unwrap_or(0.1))
        .with_inner_steps(args.inner_steps.or(set.inner_steps).unwrap_or(5))
        .with_loss(args.loss.or(set.loss).unwrap_or(Loss::Mse));
    adapt.validate_linear()?;
    let opt = optimum(&set.tasks, set.d_out(), &adapt)?;
    print_json(&opt);
    Ok(())
}
