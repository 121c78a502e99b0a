//! `maml eval` of a checkpoint of the model-agnostic core (an MLP, a conv net): the
//! adaptation curve against the pretrained baseline, the query accuracy of
//! classification with its 95% interval, the official one-shot runs, and the MAML
//! paper's figures.

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::train::trainer::step_rng;
use maml_burn::maml_core::{
    AdaptConfig, BuiltIn, ImageSource, LayeredSpec, Loss, ModelCheckpoint, ModelJob, ModelKind,
    ModelSpec, Order, SinusoidFamily, StoredModel, TaskData, TaskSource, adapted_predictions,
    eval_accuracy, eval_curve, load_runs,
};
use serde::Serialize;

use crate::error::CliError;
use crate::eval::EvalArgs;
use crate::plot::{Series, Style, line_plot};
use crate::print_json;

/// The seed of the evaluation tasks (apart from every training step's).
const EVAL_STREAM: usize = usize::MAX - 1;

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

/// What `maml eval` reports for a checkpoint of the model-agnostic core.
#[derive(Debug, Clone, Serialize)]
pub struct CoreEvalReport {
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
    /// Classification: the query accuracy after K steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
}

/// Reads a weights file of `kind` (`weights.json`, `pretrained.json`).
fn read_model(path: &Path, kind: ModelKind) -> Result<StoredModel, CliError> {
    let read = maml_burn::maml_core::data::read_json::<ModelSpec>;
    let model = match kind {
        ModelKind::Mlp => StoredModel::Mlp(read(path)?),
        ModelKind::Layered => {
            StoredModel::Layered(maml_burn::maml_core::data::read_json::<LayeredSpec>(path)?)
        }
    };
    model.shape(&path.display().to_string())?;
    Ok(model)
}

/// The evaluation of one checkpoint on given tasks, for its model type.
struct EvalWork<'a, B: Backend> {
    checkpoint: &'a ModelCheckpoint,
    pretrained: Option<&'a StoredModel>,
    tasks: &'a [TaskData],
    adapt: &'a AdaptConfig,
    curve: bool,
    device: &'a B::Device,
}

/// MAML's curve, the pretrained curve and each task's accuracy (classification).
type Evaluated = (Vec<f64>, Option<Vec<f64>>, Option<Vec<f64>>);

impl<B: Backend> ModelJob<B> for EvalWork<'_, B> {
    type Output = Result<Evaluated, CliError>;

    fn run<M: BuiltIn<B>>(self) -> Self::Output {
        let (model, sizes) = (&self.checkpoint.model, self.checkpoint.step_sizes.as_ref());
        let curve = |m: &StoredModel, s: Option<&StoredModel>| {
            eval_curve::<B, M>(m, s, self.tasks, self.adapt, self.device)
        };
        let maml = if self.curve {
            curve(model, sizes)?
        } else {
            Vec::new()
        };
        let pretrained = match self.pretrained {
            Some(p) if self.curve => Some(curve(p, None)?),
            _ => None,
        };
        let accuracy = (self.adapt.loss == Loss::CrossEntropy)
            .then(|| eval_accuracy::<B, M>(model, sizes, self.tasks, self.adapt, self.device))
            .transpose()?;
        Ok((maml, pretrained, accuracy))
    }
}

/// `maml eval` on tasks.
struct CoreEvalJob {
    checkpoint: ModelCheckpoint,
    pretrained: Option<StoredModel>,
    tasks: Vec<TaskData>,
    adapt: AdaptConfig,
    curve: bool,
}

impl CoreEvalJob {
    /// Runs the evaluation on backend `B`.
    fn evaluate<B: Backend>(&self, device: &B::Device) -> Result<Evaluated, CliError> {
        self.checkpoint.model.kind().dispatch::<B, _>(EvalWork {
            checkpoint: &self.checkpoint,
            pretrained: self.pretrained.as_ref(),
            tasks: &self.tasks,
            adapt: &self.adapt,
            curve: self.curve,
            device,
        })
    }
}

impl BackendJob for &CoreEvalJob {
    type Output = Evaluated;
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<Evaluated, CliError> {
        self.evaluate::<B>(device)
    }
}

/// The test-time adaptation of a checkpoint: first order; its inner steps (at least 10
/// for regression, as the paper's curves) unless given.
fn test_adapt(
    checkpoint: &ModelCheckpoint,
    inner_steps: Option<usize>,
    inner_lr: Option<f64>,
) -> AdaptConfig {
    let mut adapt = checkpoint
        .config
        .meta
        .adapt
        .clone()
        .with_order(Order::First);
    let default = match adapt.loss {
        Loss::CrossEntropy => adapt.inner_steps,
        _ => adapt.inner_steps.max(10),
    };
    adapt.inner_steps = inner_steps.unwrap_or(default);
    if let Some(lr) = inner_lr {
        adapt.inner_lr = lr;
    }
    adapt
}

/// Evaluates the checkpoint in `dir` (and `pretrained.json` beside it) on `num_tasks`
/// fresh tasks of its family.
pub fn evaluate_dir<B: Backend>(
    dir: &Path,
    num_tasks: usize,
    device: &B::Device,
) -> Result<CoreEvalReport, CliError> {
    let path = dir.join("checkpoint.json");
    let checkpoint = ModelCheckpoint::load(&path)?;
    let tasks = fresh_tasks(&checkpoint, None, num_tasks, 1)?;
    let adapt = test_adapt(&checkpoint, None, None);
    let job = job(&path, checkpoint, tasks, adapt, true)?;
    Ok(report(&path, &job, job.evaluate::<B>(device)?))
}

/// Fresh tasks: of `images` when given (other image classes, e.g. held-out alphabets),
/// else of the checkpoint's family (sinusoids with 100 query points, as the paper).
fn fresh_tasks(
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
    Ok(family.sample(num_tasks, &mut step_rng(seed, EVAL_STREAM)))
}

fn job(
    path: &Path,
    checkpoint: ModelCheckpoint,
    tasks: Vec<TaskData>,
    adapt: AdaptConfig,
    curve: bool,
) -> Result<CoreEvalJob, CliError> {
    let pretrained_path = path.with_file_name("pretrained.json");
    let pretrained = match pretrained_path.exists() && curve {
        true => Some(read_model(&pretrained_path, checkpoint.model.kind())?),
        false => None,
    };
    Ok(CoreEvalJob {
        checkpoint,
        pretrained,
        tasks,
        adapt,
        curve,
    })
}

fn report(
    path: &Path,
    job: &CoreEvalJob,
    (maml, pretrained, accuracy): Evaluated,
) -> CoreEvalReport {
    CoreEvalReport {
        checkpoint: path.display().to_string(),
        meta_steps: job.checkpoint.step,
        tasks: job.tasks.len(),
        inner_steps: job.adapt.inner_steps,
        inner_lr: job.adapt.inner_lr,
        meta_sgd: job.checkpoint.step_sizes.is_some(),
        maml,
        pretrained,
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

/// `maml eval` of a checkpoint of the model-agnostic core.
pub fn eval_core(args: EvalArgs) -> Result<(), CliError> {
    if args.tasks.is_some() {
        return Err(CliError::Usage(
            "--tasks is for linear checkpoints; this checkpoint is evaluated on fresh tasks of \
             its family, --data or --runs"
                .into(),
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
        let runs = load_runs(runs)?;
        let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        let tasks = runs.into_iter().map(|r| r.task).collect();
        let job = job(path, checkpoint, tasks, adapt, false)?;
        let inner_steps = job.adapt.inner_steps;
        let (_, _, accuracy) = dispatch_with(b.backend, b.precision, b.threads, &job)?;
        let runs: Vec<RunError> = names
            .into_iter()
            .zip(accuracy.expect("classification reports accuracy"))
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
            })
        }
        None => None,
    };
    let tasks = fresh_tasks(&checkpoint, images.as_ref(), args.num_tasks, args.rng_seed)?;
    let job = job(path, checkpoint, tasks, adapt, true)?;
    let evaluated = dispatch_with(b.backend, b.precision, b.threads, &job)?;
    let report = report(path, &job, evaluated);
    if args.figures {
        let dir = path.parent().unwrap_or(Path::new("."));
        figure3(dir, &report)?;
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
        "mean query loss on {} fresh tasks after k gradient steps (inner_lr {}{}):",
        report.tasks,
        report.inner_lr,
        if report.meta_sgd {
            ", MAML: Meta-SGD's learned sizes"
        } else {
            ""
        }
    ));
    crate::emit(&format!("{:>3} {:>14} {:>14}", "k", "MAML", "pretrained"));
    for (k, m) in report.maml.iter().enumerate() {
        let p = report.pretrained.as_ref().map_or(f64::NAN, |p| p[k]);
        crate::emit(&format!("{k:>3} {m:>14.6} {p:>14.6}"));
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

/// The MAML paper's Figure 3: mean query loss against gradient steps, MAML and
/// pretrained.
pub fn figure3(dir: &Path, report: &CoreEvalReport) -> Result<(), CliError> {
    let curve = |name: &str, c: &[f64]| Series {
        style: Style::Line,
        name: name.into(),
        points: c.iter().enumerate().map(|(k, l)| (k as f64, *l)).collect(),
    };
    let mut series = vec![curve("MAML", &report.maml)];
    if let Some(p) = &report.pretrained {
        series.push(curve("pretrained", p));
    }
    line_plot(
        &dir.join("adaptation.svg"),
        &format!(
            "Query loss on {} fresh tasks vs gradient steps",
            report.tasks
        ),
        "number of gradient steps",
        "mean query loss",
        &series,
        true,
    )
}

/// The MAML paper's Figure 2 for one fresh sinusoid task: the ground truth, the K
/// support points, and the predictions of MAML and of the pretrained model before and
/// after 1 and 10 gradient steps.
pub struct Figure2Job {
    pub checkpoint: PathBuf,
    pub seed: u64,
}

/// Figure 2's predictions for the checkpoint's model type.
struct Predict<'a, B: Backend> {
    model: &'a StoredModel,
    sizes: Option<&'a StoredModel>,
    task: &'a TaskData,
    x: &'a [Vec<f64>],
    steps: &'a [usize],
    adapt: &'a AdaptConfig,
    device: &'a B::Device,
}

impl<B: Backend> ModelJob<B> for Predict<'_, B> {
    type Output = Result<Vec<Vec<Vec<f64>>>, CliError>;
    fn run<M: BuiltIn<B>>(self) -> Self::Output {
        Ok(adapted_predictions::<B, M>(
            self.model,
            self.sizes,
            self.task,
            self.x,
            self.steps,
            self.adapt,
            self.device,
        )?)
    }
}

impl BackendJob for Figure2Job {
    type Output = ();
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<(), CliError> {
        let checkpoint = ModelCheckpoint::load(&self.checkpoint)?;
        let TaskSource::Sinusoid(family) = &checkpoint.config.tasks else {
            return Err(CliError::Usage(
                "--figures needs a checkpoint of the sinusoid family".into(),
            ));
        };
        let family: &SinusoidFamily = family;
        let (sine, task) = family.sample_task(&mut step_rng(self.seed, EVAL_STREAM - 1));
        let grid: Vec<f64> = (0..=200)
            .map(|i| family.x_min + (family.x_max - family.x_min) * i as f64 / 200.0)
            .collect();
        let x: Vec<Vec<f64>> = grid.iter().map(|&v| vec![v]).collect();
        let adapt: AdaptConfig = checkpoint.config.meta.adapt.clone();
        let steps = [0, 1, 10];
        let mut series = vec![Series {
            style: Style::Line,
            name: "ground truth".into(),
            points: grid.iter().map(|&v| (v, sine.at(v))).collect(),
        }];
        let kind = checkpoint.model.kind();
        let mut inits = vec![(
            "MAML",
            checkpoint.model.clone(),
            checkpoint.step_sizes.clone(),
        )];
        let pretrained = self.checkpoint.with_file_name("pretrained.json");
        if pretrained.exists() {
            inits.push(("pretrained", read_model(&pretrained, kind)?, None));
        }
        for (name, model, sizes) in inits {
            let preds = kind.dispatch::<B, _>(Predict {
                model: &model,
                sizes: sizes.as_ref(),
                task: &task,
                x: &x,
                steps: &steps,
                adapt: &adapt,
                device,
            })?;
            for (k, pred) in steps.iter().zip(preds) {
                series.push(Series {
                    style: Style::Line,
                    name: format!("{name}, {k} steps"),
                    points: grid.iter().zip(pred).map(|(&v, p)| (v, p[0])).collect(),
                });
            }
        }
        series.push(Series {
            style: Style::Markers,
            name: format!("{} support points", task.support.len()),
            points: task
                .support
                .x
                .iter()
                .zip(task.support.y.iter().flatten())
                .map(|(x, y)| (x[0], y[0]))
                .collect(),
        });
        let out = self.checkpoint.with_file_name("figure2.svg");
        line_plot(
            &out,
            &format!(
                "One sinusoid task (A = {:.2}, phase = {:.2}): adaptation from MAML and pretrained",
                sine.amplitude, sine.phase
            ),
            "x",
            "y",
            &series,
            false,
        )
    }
}
