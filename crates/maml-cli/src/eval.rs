//! `maml eval` of a checkpoint of any built-in model: the adaptation curve against a
//! random initialisation and the pretrained baseline, the query accuracy of
//! classification with its 95% interval, the official one-shot runs, the MAML paper's
//! figures.

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use clap::Args;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::families::SinusoidFamily;
use maml_burn::maml_core::train::guard::step_rng;
use maml_burn::maml_core::{AdaptConfig, Loss, TaskData};
use maml_burn::maml_data::few_shot::ImageSource;
use maml_burn::maml_data::images::load_runs;
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::run::load_tasks;
use maml_burn::maml_data::stored::ConfigInit;
use maml_burn::maml_data::stored::ModelCheckpoint;
use maml_burn::maml_data::stored::ModelKind;
use maml_burn::maml_data::stored::StoredModel;
use serde::Serialize;

use crate::error::CliError;
use crate::figures::{Figure2Job, figure3};
use crate::scoring::{EvalWork, Evaluated, test_adapt};
use crate::weights::read_model;
use crate::{BackendArgs, print_json};

/// The seed of the evaluation tasks (apart from every training step's).
const EVAL_STREAM: usize = usize::MAX - 1;

/// `maml eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint written by `maml train` (DIR/checkpoint.json).
    pub checkpoint: PathBuf,
    /// Evaluate on the tasks of a task-set or problem file instead of fresh tasks from
    /// the checkpoint's task family.
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
    /// Seed of the fresh tasks and of the random initialisation compared against (the
    /// linear model and MLPs).
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
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Mean accuracy over tasks with the paper's 95% interval.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    /// Mean query accuracy over the tasks.
    pub mean: f64,
    /// `1.96 · std / √tasks` (std over tasks, population).
    pub ci95: f64,
    /// Number of tasks.
    pub tasks: usize,
}

impl Accuracy {
    fn of(per_task: &[f64]) -> Self {
        let n = per_task.len().max(1) as f64;
        let mean = per_task.iter().sum::<f64>() / n;
        let var = per_task.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            ci95: 1.96 * var.sqrt() / n.sqrt(),
            tasks: per_task.len(),
        }
    }
}

/// What `maml eval` reports for a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The checkpoint.
    pub checkpoint: String,
    /// Meta steps it was trained for.
    pub meta_steps: usize,
    /// Number of fresh tasks.
    pub tasks: usize,
    /// Inner steps of the test-time adaptation.
    pub inner_steps: usize,
    /// Inner step size of the test-time adaptation (Meta-SGD: its learned sizes).
    pub inner_lr: f64,
    /// Whether the MAML curve used Meta-SGD's learned step sizes.
    pub meta_sgd: bool,
    /// Mean query loss after 0..=K steps from the meta-learned initialisation.
    pub maml: Vec<f64>,
    /// The same from the pretrained baseline (absent without `pretrained.json`).
    pub pretrained: Option<Vec<f64>>,
    /// The same from a random initialisation (the linear model: Kaiming-normal; an MLP:
    /// its initialisation), drawn with `--rng-seed`; absent for conv nets.
    pub random: Option<Vec<f64>>,
    /// Classification: the query accuracy after K steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
}

/// `maml eval` on tasks.
struct EvalJob {
    checkpoint: ModelCheckpoint,
    pretrained: Option<StoredModel>,
    random: Option<StoredModel>,
    tasks: Vec<TaskData>,
    adapt: AdaptConfig,
    curve: bool,
}

impl EvalJob {
    /// Runs the evaluation on backend `B`.
    fn evaluate<B: Backend>(&self, device: &B::Device) -> Result<Evaluated, CliError> {
        self.checkpoint.model.kind().dispatch::<B, _>(EvalWork {
            checkpoint: &self.checkpoint,
            pretrained: self.pretrained.as_ref(),
            random: self.random.as_ref(),
            tasks: &self.tasks,
            adapt: &self.adapt,
            curve: self.curve,
            device,
        })
    }
}

impl BackendJob for &EvalJob {
    type Output = Evaluated;
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<Evaluated, CliError> {
        self.evaluate::<B>(device)
    }
}

/// Evaluates the checkpoint in `dir` (and `pretrained.json` beside it) on `num_tasks`
/// fresh tasks of its family.
pub fn evaluate_dir<B: Backend>(
    dir: &Path,
    num_tasks: usize,
    device: &B::Device,
) -> Result<EvalReport, CliError> {
    let path = dir.join("checkpoint.json");
    let checkpoint = ModelCheckpoint::load(&path)?;
    let tasks = fresh_tasks(&path, &checkpoint, None, num_tasks, 1)?;
    let adapt = test_adapt(&checkpoint, None, None);
    let job = job(&path, checkpoint, None, tasks, adapt, true)?;
    Ok(report(&path, &job, job.evaluate::<B>(device)?))
}

/// Fresh tasks: of `images` when given (other image classes, e.g. held-out alphabets),
/// else of the checkpoint's family (sinusoids with 100 query points, as the paper).
fn fresh_tasks(
    path: &Path,
    checkpoint: &ModelCheckpoint,
    images: Option<&ImageSource>,
    num_tasks: usize,
    seed: u64,
) -> Result<Vec<TaskData>, CliError> {
    if num_tasks == 0 {
        return Err(CliError::Usage(
            "invalid --num-tasks 0: must be at least 1".into(),
        ));
    }
    let source = match (images, &checkpoint.config.tasks) {
        (Some(images), _) => TaskSource::Omniglot(images.clone()),
        (None, TaskSource::Sinusoid(f)) => TaskSource::Sinusoid(SinusoidFamily {
            query_shots: 100,
            ..f.clone()
        }),
        (None, other) => other.clone(),
    };
    let family = source.family()?;
    let sizes = checkpoint.step_sizes.as_ref();
    let name = path.display().to_string();
    checkpoint.model.check_fits(sizes, family.as_ref(), &name)?;
    Ok(family.sample(num_tasks, &mut step_rng(seed, EVAL_STREAM)))
}

fn job(
    path: &Path,
    checkpoint: ModelCheckpoint,
    random: Option<StoredModel>,
    tasks: Vec<TaskData>,
    adapt: AdaptConfig,
    curve: bool,
) -> Result<EvalJob, CliError> {
    let pretrained_path = path.with_file_name("pretrained.json");
    let pretrained = match pretrained_path.exists() && curve {
        true => Some(read_model(&pretrained_path, checkpoint.model.kind())?),
        false => None,
    };
    Ok(EvalJob {
        checkpoint,
        pretrained,
        random,
        tasks,
        adapt,
        curve,
    })
}

fn report(path: &Path, job: &EvalJob, evaluated: Evaluated) -> EvalReport {
    let Evaluated {
        maml,
        pretrained,
        random,
        accuracy,
    } = evaluated;
    EvalReport {
        checkpoint: path.display().to_string(),
        meta_steps: job.checkpoint.step,
        tasks: job.tasks.len(),
        inner_steps: job.adapt.inner_steps,
        inner_lr: job.adapt.inner_lr,
        meta_sgd: job.checkpoint.step_sizes.is_some(),
        maml,
        pretrained,
        random,
        accuracy: accuracy.as_deref().map(Accuracy::of),
    }
}

/// What `maml eval --runs` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunsReport {
    /// The checkpoint.
    pub checkpoint: String,
    /// Inner steps of the adaptation on each run's training images.
    pub inner_steps: usize,
    /// Each run: its name and error (the share of its test items classified wrong).
    pub runs: Vec<RunError>,
    /// The mean error over the runs.
    pub mean_error: f64,
}

/// One run's error.
#[derive(Debug, Clone, Serialize)]
pub struct RunError {
    /// `runNN`.
    pub run: String,
    /// The share of its test items classified wrong.
    pub error: f64,
}

/// A random initialisation to compare a checkpoint against, drawn with `seed`: the
/// linear model's Kaiming-normal weights, an MLP's initialisation; none for conv nets.
fn random_init(checkpoint: &ModelCheckpoint, seed: u64) -> Result<Option<StoredModel>, CliError> {
    Ok(
        match (&checkpoint.config.model, checkpoint.model.as_linear()) {
            (None, Some(w)) => Some(StoredModel::linear(LinearWeights::kaiming(
                w.d_in(),
                w.d_out(),
                seed,
            ))),
            (Some(model), _) if model.kind() == ModelKind::Mlp => {
                Some(model.init(checkpoint.config.tasks.family()?.as_ref(), seed)?)
            }
            _ => None,
        },
    )
}

/// `maml eval`.
pub fn eval(args: EvalArgs) -> Result<(), CliError> {
    if args.tasks.is_some() && (args.runs.is_some() || args.data.is_some()) {
        return Err(CliError::Usage(
            "--tasks evaluates on a task file: give it without --runs or --data".into(),
        ));
    }
    let path = &args.checkpoint;
    let checkpoint = ModelCheckpoint::load(path)?;
    let adapt = test_adapt(&checkpoint, args.inner_steps, args.inner_lr);
    adapt.validate()?;
    let b = args.backend;
    if let Some(runs) = &args.runs {
        if adapt.loss != Loss::CrossEntropy {
            return Err(CliError::Usage(format!(
                "--runs classifies images: {} was trained with --loss {}",
                path.display(),
                adapt.loss
            )));
        }
        let runs_path = runs;
        let runs = load_runs(runs_path)?;
        if let (TaskSource::Omniglot(trained), Some(run)) = (&checkpoint.config.tasks, runs.first())
        {
            let ways = run.task.support.x.len();
            if ways != trained.ways {
                return Err(CliError::Usage(format!(
                    "--runs {}: {} has {ways} classes, but {} was trained for {} ways",
                    runs_path.display(),
                    run.name,
                    path.display(),
                    trained.ways
                )));
            }
        }
        let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        let tasks = runs.into_iter().map(|r| r.task).collect();
        let job = job(path, checkpoint, None, tasks, adapt, false)?;
        let inner_steps = job.adapt.inner_steps;
        let evaluated = dispatch_with(b.backend, b.precision, b.threads, &job)?;
        let runs: Vec<RunError> = names
            .into_iter()
            .zip(evaluated.accuracy.expect("classification reports accuracy"))
            .map(|(run, a)| RunError {
                run,
                error: 1.0 - a,
            })
            .collect();
        let mean_error = runs.iter().map(|r| r.error).sum::<f64>() / runs.len() as f64;
        let report = RunsReport {
            checkpoint: path.display().to_string(),
            inner_steps,
            runs,
            mean_error,
        };
        if args.json {
            print_json(&report);
        } else {
            for r in &report.runs {
                crate::emit(&format!("{}: error {:.1}%", r.run, 100.0 * r.error));
            }
            crate::emit(&format!(
                "mean error over {} one-shot runs after {} inner steps: {:.1}%",
                report.runs.len(),
                report.inner_steps,
                100.0 * report.mean_error
            ));
        }
        return Ok(());
    }
    let images = match &args.data {
        Some(data) => {
            let TaskSource::Omniglot(trained) = &checkpoint.config.tasks else {
                return Err(CliError::Usage(
                    "--data: this checkpoint was not trained on images".into(),
                ));
            };
            Some(ImageSource {
                data: data.display().to_string(),
                ways: args.ways.unwrap_or(trained.ways),
                shots: args.shots.unwrap_or(trained.shots),
                queries: args.queries.unwrap_or(trained.queries),
                rotations: args.rotations,
                alphabets: args.alphabets.clone(),
                shift: 0,
            })
        }
        None => None,
    };
    let tasks = match &args.tasks {
        Some(file) => load_tasks(&file.display().to_string())?,
        None => fresh_tasks(
            path,
            &checkpoint,
            images.as_ref(),
            args.num_tasks,
            args.rng_seed,
        )?,
    };
    let random = random_init(&checkpoint, args.rng_seed)?;
    let job = job(path, checkpoint, random, tasks, adapt, true)?;
    let evaluated = dispatch_with(b.backend, b.precision, b.threads, &job)?;
    let report = report(path, &job, evaluated);
    if args.figures {
        let dir = path.parent().unwrap_or(Path::new("."));
        figure3(
            dir,
            report.tasks,
            &report.maml,
            report.pretrained.as_deref(),
        )?;
        dispatch_with(
            b.backend,
            b.precision,
            b.threads,
            Figure2Job {
                checkpoint: path.clone(),
                seed: args.rng_seed,
            },
        )?;
    }
    if args.json {
        print_json(&report);
        return Ok(());
    }
    crate::emit(&format!(
        "mean query loss on {} tasks after k gradient steps (inner_lr {}{}):",
        report.tasks,
        report.inner_lr,
        if report.meta_sgd {
            ", MAML: Meta-SGD's learned sizes"
        } else {
            ""
        }
    ));
    // One column per curve the report has (a run without a baseline has no `pretrained`).
    let curves: Vec<(&str, &[f64])> = [
        ("MAML", Some(report.maml.as_slice())),
        ("pretrained", report.pretrained.as_deref()),
        ("random init", report.random.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, curve)| Some((name, curve?)))
    .collect();
    let mut header = format!("{:>3}", "k");
    for (name, _) in &curves {
        header.push_str(&format!(" {name:>14}"));
    }
    crate::emit(&header);
    for k in 0..report.maml.len() {
        let mut line = format!("{k:>3}");
        for (_, curve) in &curves {
            line.push_str(&format!(" {:>14.6}", curve[k]));
        }
        crate::emit(&line);
    }
    if let Some(a) = &report.accuracy {
        crate::emit(&format!(
            "query accuracy after {} steps: {:.2}% ± {:.2}% (95% interval, {} tasks)",
            report.inner_steps,
            100.0 * a.mean,
            100.0 * a.ci95,
            a.tasks
        ));
    }
    Ok(())
}
