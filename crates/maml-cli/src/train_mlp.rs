//! `maml train` and `maml eval` for MLPs (and a linear model given as one layer) on the
//! model-agnostic core: MAML or Meta-SGD, a pretrained baseline, the MAML paper's
//! figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::data::write_atomic;
use maml_burn::maml_core::train::problems::ModelSpec;
use maml_burn::maml_core::train::trainer::step_rng;
use maml_burn::maml_core::{
    Activation, AdaptConfig, MlpCheckpoint, MlpTrainer, MlpWeights, Order, SinusoidFamily,
    TaskData, TaskSource, TrainConfig, mlp_adapted_predictions, mlp_eval_curve,
};
use serde::Serialize;

use crate::error::CliError;
use crate::plot::{MOVING_AVERAGE_FROM, Series, Style, line_plot, with_moving_average};
use crate::progress::{loss_message, progress};

/// The seed of the evaluation tasks (apart from every training step's).
const EVAL_STREAM: usize = usize::MAX - 1;

/// An MLP training run.
pub struct MlpJob {
    pub config: TrainConfig,
    pub initial: Option<(MlpWeights, Option<MlpWeights>)>,
    pub start_step: usize,
    pub out: PathBuf,
    pub checkpoint_every: usize,
    pub eval_tasks: usize,
    /// Meta steps of the pretrained baseline (0: none).
    pub baseline_steps: usize,
    /// How the meta-batches are split.
    pub parallel: Parallel,
}

/// How the tasks of each meta-batch are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallel {
    /// One worker, this thread.
    Alone,
    /// Threads of this process on burn-collective.
    Workers(usize),
    /// This process is `rank` of `size` in an MPI job (`--mpi`); rank 0 writes `--out`.
    /// Only built with the `mpi` feature.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Mpi {
        /// This process's rank.
        rank: usize,
        /// The number of processes.
        size: usize,
    },
}

/// How a worker sums the shares of a meta step.
#[derive(Debug, Clone, Copy)]
enum Reduce {
    /// Nothing to sum: the whole meta-batch.
    Alone,
    /// burn-collective, between threads.
    Collective,
    /// MPI, between processes.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Mpi,
}

/// What a training worker reports to the thread that writes the outputs.
enum Event {
    Step {
        step: usize,
        meta_loss: f64,
        before: f64,
        rising: usize,
    },
    Checkpoint(MlpCheckpoint),
    Done((MlpWeights, Option<MlpWeights>, Activation)),
    Failed(CliError),
}

/// What every worker needs to train.
struct WorkerParts<'a> {
    config: &'a TrainConfig,
    initial: &'a Option<(MlpWeights, Option<MlpWeights>)>,
    start_step: usize,
    checkpoint_every: usize,
}

impl WorkerParts<'_> {
    /// Trains as worker `rank` of `workers` (1: alone), reporting to `emit` (rank 0's
    /// events are the run's).
    fn run<B: Backend>(
        &self,
        rank: usize,
        workers: usize,
        reduce: Reduce,
        device: &B::Device,
        emit: &mut dyn FnMut(Event) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let steps = self.config.meta_steps;
        let mut trainer = MlpTrainer::<B>::new(
            self.config.clone(),
            self.config.tasks.family()?,
            self.initial.clone(),
            self.start_step,
            device,
        )?;
        let checkpoint = |t: &MlpTrainer<B>, step: usize| {
            Event::Checkpoint(MlpCheckpoint {
                format: MlpCheckpoint::FORMAT.into(),
                step,
                config: self.config.clone(),
                weights: t.weights(),
                step_sizes: t.step_sizes(),
            })
        };
        if rank == 0 {
            // The starting point is a checkpoint too (a run that diverges at once).
            emit(checkpoint(&trainer, self.start_step))?;
        }
        let peer = burn_collective::PeerId(rank as u32);
        while trainer.step_index() < steps {
            let m = match reduce {
                Reduce::Alone => trainer.step()?,
                Reduce::Collective => trainer.step_parallel(rank, workers, |flat| {
                    use burn::tensor::TensorPrimitive;
                    burn_collective::all_reduce::<B>(
                        peer,
                        flat.into_primitive().tensor(),
                        burn_collective::ReduceOperation::Sum,
                    )
                    .map(|p| burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(p)))
                    .map_err(|e| format!("burn-collective all-reduce: {e:?}"))
                })?,
                #[cfg(feature = "mpi")]
                Reduce::Mpi => {
                    trainer.step_parallel(rank, workers, crate::mpi::all_reduce_sum::<B>)?
                }
                #[cfg(not(feature = "mpi"))]
                Reduce::Mpi => unreachable!("--mpi is refused by builds without MPI"),
            };
            if rank == 0 {
                emit(Event::Step {
                    step: m.step,
                    meta_loss: m.meta_loss,
                    before: m.query_loss_before,
                    rising: trainer.rising_steps(),
                })?;
                let done = trainer.step_index();
                if done % self.checkpoint_every == 0 || done == steps {
                    emit(checkpoint(&trainer, done))?;
                }
            }
        }
        if rank == 0 {
            emit(Event::Done((
                trainer.weights(),
                trainer.step_sizes(),
                trainer.activation(),
            )))?;
        }
        Ok(())
    }
}

/// Trains with `workers` threads, each with its own device handle, registered with
/// burn-collective; the calling thread writes rank 0's outputs. A worker that fails or
/// panics ends the whole process with one `error:` line (the others may be waiting in
/// an all-reduce that can no longer complete: burn-collective has no time-outs).
fn run_workers<B: Backend>(
    parts: &WorkerParts<'_>,
    workers: usize,
    device: &B::Device,
    handle: &mut dyn FnMut(Event) -> Result<(), CliError>,
) -> Result<(), CliError> {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<(usize, Event)>();
    std::thread::scope(|scope| {
        for rank in 0..workers {
            let tx = tx.clone();
            let device = device.clone();
            scope.spawn(move || {
                let config = burn_collective::CollectiveConfig::default().with_num_devices(workers);
                let peer = burn_collective::PeerId(rank as u32);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    burn_collective::register::<B>(peer, device.clone(), config)
                        .map_err(|e| CliError::Usage(format!("burn-collective register: {e:?}")))?;
                    let mut emit = |event| {
                        tx.send((rank, event))
                            .map_err(|_| CliError::Usage("the output thread has stopped".into()))
                    };
                    let run = parts.run::<B>(rank, workers, Reduce::Collective, &device, &mut emit);
                    let _ = burn_collective::finish_collective::<B>(peer);
                    run
                }));
                let failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(err),
                    Err(_) => Some(CliError::Usage(format!("worker {rank} panicked"))),
                };
                if let Some(err) = failure {
                    let _ = tx.send((rank, Event::Failed(err)));
                }
            });
        }
        drop(tx);
        let mut failed = false;
        for (rank, event) in rx {
            match event {
                Event::Failed(err) if rank == 0 => {
                    handle(Event::Failed(err))?;
                    failed = true;
                }
                Event::Failed(err) if !failed => {
                    // Rank 0 may be blocked in an all-reduce with this worker: stop here.
                    eprintln!("error: data-parallel worker {rank} failed: {err}");
                    std::process::exit(1);
                }
                Event::Failed(_) => {}
                event => handle(event)?,
            }
        }
        Ok(())
    })
}

/// What a training run prints at the end.
#[derive(Debug, Serialize)]
pub struct MlpSummary {
    out: String,
    backend: String,
    meta_steps: usize,
    final_meta_loss: f64,
    seconds: f64,
    meta_steps_per_s: f64,
    baseline_seconds: f64,
}

fn spec(weights: MlpWeights, activation: Activation) -> ModelSpec {
    ModelSpec {
        layers: weights.layers,
        activation,
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let json = serde_json::to_string_pretty(value).expect("weights and checkpoints serialise");
    write_atomic(path, json.as_bytes())?;
    Ok(())
}

/// The pretrained baseline's configuration: the same model and optimiser trained on the
/// pooled tasks, with no adaptation (zero inner steps), as in Finn et al. 2017.
pub fn baseline_config(config: &TrainConfig, steps: usize) -> TrainConfig {
    let mut base = config.clone();
    base.meta.adapt = base
        .meta
        .adapt
        .clone()
        .with_inner_steps(0)
        .with_order(Order::First)
        .with_meta_sgd(false);
    base.meta_steps = steps;
    base
}

impl BackendJob for MlpJob {
    type Output = MlpSummary;
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<MlpSummary, CliError> {
        if let Parallel::Mpi { rank, size } = self.parallel
            && rank != 0
        {
            return self.follow::<B>(rank, size, device);
        }
        let steps = self.config.meta_steps;
        let bar = progress(steps, self.start_step, "meta-train");
        let started = Instant::now();
        let mut rows: Vec<(usize, f64, f64)> = Vec::new();
        let mut last_good = None;
        let mut finished = None;
        let mut failure = None;
        let mut handle = |event: Event| -> Result<(), CliError> {
            match event {
                Event::Step {
                    step,
                    meta_loss,
                    before,
                    rising,
                } => {
                    rows.push((step, meta_loss, before));
                    if step % 50 == 0 || rising >= 20 {
                        bar.set_message(loss_message(meta_loss, rising));
                    }
                    bar.inc(1);
                }
                Event::Checkpoint(checkpoint) => {
                    let step = checkpoint.step;
                    write_json(&self.out.join("checkpoint.json"), &checkpoint)?;
                    last_good = Some(step);
                }
                Event::Done(done) => finished = Some(done),
                Event::Failed(err) => failure = Some(err),
            }
            Ok(())
        };
        let parts = self.parts();
        match self.parallel {
            Parallel::Workers(workers) if workers > 1 => {
                run_workers::<B>(&parts, workers, device, &mut handle)?
            }
            parallel => {
                // This thread is the only worker of the process (rank 0 of an MPI job).
                let (size, reduce) = match parallel {
                    Parallel::Mpi { size, .. } if size > 1 => (size, Reduce::Mpi),
                    _ => (1, Reduce::Alone),
                };
                if let Err(err) = parts.run::<B>(0, size, reduce, device, &mut handle) {
                    handle(Event::Failed(err))?;
                }
            }
        }
        bar.finish_and_clear();
        if let Some(err) = failure {
            let kept = match last_good {
                Some(step) => format!("the last good checkpoint (meta step {step}) is kept"),
                None => "no checkpoint of this run was written".into(),
            };
            let message = format!(
                "{err}; {kept} in {}",
                self.out.join("checkpoint.json").display()
            );
            return Err(if err.is_divergence() {
                CliError::Diverged(message)
            } else {
                CliError::Stopped(message)
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let (weights, step_sizes, activation) =
            finished.expect("a run that did not fail reports its final weights");
        write_json(
            &self.out.join("weights.json"),
            &spec(weights.clone(), activation),
        )?;
        if let Some(sizes) = step_sizes {
            write_json(&self.out.join("step_sizes.json"), &spec(sizes, activation))?;
        }
        let mut csv = String::from("step,meta_loss,query_loss_before\n");
        for (step, loss, before) in &rows {
            csv.push_str(&format!("{step},{loss:e},{before:e}\n"));
        }
        write_atomic(&self.out.join("metrics.csv"), csv.as_bytes())?;
        let mut series = vec![Series {
            style: Style::Line,
            name: format!("{}-order MAML", self.config.meta.adapt.order),
            points: rows.iter().map(|r| (r.0 as f64, r.1)).collect(),
        }];

        let baseline_started = Instant::now();
        if self.baseline_steps > 0 {
            let base = baseline_config(&self.config, self.baseline_steps);
            let mut baseline =
                MlpTrainer::<B>::new(base.clone(), base.tasks.family()?, None, 0, device)?;
            let bar = progress(self.baseline_steps, 0, "pretrain  ");
            let mut base_rows = Vec::new();
            while baseline.step_index() < self.baseline_steps {
                let m = baseline.step()?;
                base_rows.push((m.step as f64, m.meta_loss));
                bar.inc(1);
            }
            bar.finish_and_clear();
            write_json(
                &self.out.join("pretrained.json"),
                &spec(baseline.weights(), activation),
            )?;
            series.push(Series {
                style: Style::Line,
                name: "pretrained (query loss, no adaptation)".into(),
                points: base_rows,
            });
        }
        let baseline_seconds = baseline_started.elapsed().as_secs_f64();
        line_plot(
            &self.out.join("meta_loss.svg"),
            "Meta-loss (mean query loss after adaptation)",
            "meta step",
            "loss",
            &with_moving_average(series, MOVING_AVERAGE_FROM),
            true,
        )?;
        if self.eval_tasks > 0 && self.baseline_steps > 0 {
            let report = evaluate_dir::<B>(&self.out, self.eval_tasks, None, 1, device)?;
            figure3(&self.out, &report)?;
        }
        let done = steps.saturating_sub(self.start_step);
        Ok(MlpSummary {
            out: self.out.display().to_string(),
            backend: B::name(device),
            meta_steps: steps,
            final_meta_loss: rows.last().map_or(f64::NAN, |r| r.1),
            seconds,
            meta_steps_per_s: done as f64 / seconds.max(1e-9),
            baseline_seconds,
        })
    }
}

impl MlpJob {
    /// What every worker of this job needs.
    fn parts(&self) -> WorkerParts<'_> {
        WorkerParts {
            config: &self.config,
            initial: &self.initial,
            start_step: self.start_step,
            checkpoint_every: self.checkpoint_every,
        }
    }

    /// Trains as MPI rank `rank` (not 0) of `size`: the same meta steps as rank 0, on
    /// this rank's share of every meta-batch, writing nothing.
    fn follow<B: Backend>(
        self,
        rank: usize,
        size: usize,
        device: &B::Device,
    ) -> Result<MlpSummary, CliError> {
        let started = Instant::now();
        let parts = self.parts();
        parts.run::<B>(rank, size, Reduce::Mpi, device, &mut |_| Ok(()))?;
        let seconds = started.elapsed().as_secs_f64();
        let done = self.config.meta_steps.saturating_sub(self.start_step);
        Ok(MlpSummary {
            out: String::new(),
            backend: B::name(device),
            meta_steps: self.config.meta_steps,
            final_meta_loss: f64::NAN,
            seconds,
            meta_steps_per_s: done as f64 / seconds.max(1e-9),
            baseline_seconds: 0.0,
        })
    }
}

/// What `maml eval` reports for an MLP checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct MlpEvalReport {
    /// The checkpoint.
    pub checkpoint: String,
    /// Meta steps it was trained for.
    pub meta_steps: usize,
    /// Number of fresh tasks.
    pub tasks: usize,
    /// Inner step size of the test-time adaptation (Meta-SGD: its learned sizes).
    pub inner_lr: f64,
    /// Whether the MAML curve used Meta-SGD's learned step sizes.
    pub meta_sgd: bool,
    /// Mean query loss after 0..=K steps from the meta-learned initialisation.
    pub maml: Vec<f64>,
    /// The same from the pretrained baseline (absent without `pretrained.json`).
    pub pretrained: Option<Vec<f64>>,
}

fn read_spec(path: &Path) -> Result<ModelSpec, CliError> {
    let spec: ModelSpec = maml_burn::maml_core::data::read_json(path)?;
    spec.weights().validate(&path.display().to_string())?;
    Ok(spec)
}

/// Evaluates the checkpoint in `dir` (and `pretrained.json` beside it) on `num_tasks`
/// fresh tasks of its family.
pub fn evaluate_dir<B: Backend>(
    dir: &Path,
    num_tasks: usize,
    inner_steps: Option<usize>,
    seed: u64,
    device: &B::Device,
) -> Result<MlpEvalReport, CliError> {
    let path = dir.join("checkpoint.json");
    evaluate_checkpoint::<B>(&path, num_tasks, inner_steps, None, seed, device)
}

/// Evaluates an MLP checkpoint (and the `pretrained.json` beside it, if any).
pub fn evaluate_checkpoint<B: Backend>(
    path: &Path,
    num_tasks: usize,
    inner_steps: Option<usize>,
    inner_lr: Option<f64>,
    seed: u64,
    device: &B::Device,
) -> Result<MlpEvalReport, CliError> {
    let checkpoint = MlpCheckpoint::load(path)?;
    let activation = checkpoint
        .config
        .model
        .as_ref()
        .map_or(Activation::Relu, |m| m.activation);
    // The paper evaluates sinusoids on 100 query points per task (as the JAX peer does).
    let source = match &checkpoint.config.tasks {
        TaskSource::Sinusoid(f) => TaskSource::Sinusoid(SinusoidFamily {
            query_shots: 100,
            ..f.clone()
        }),
        other => other.clone(),
    };
    let family = source.family()?;
    let tasks: Vec<TaskData> = family.sample(num_tasks, &mut step_rng(seed, EVAL_STREAM));
    let mut adapt = checkpoint
        .config
        .meta
        .adapt
        .clone()
        .with_order(Order::First);
    adapt.inner_steps = inner_steps.unwrap_or(adapt.inner_steps.max(10));
    if let Some(lr) = inner_lr {
        adapt.inner_lr = lr;
    }
    let maml = mlp_eval_curve::<B>(
        &spec(checkpoint.weights.clone(), activation),
        checkpoint.step_sizes.as_ref(),
        &tasks,
        &adapt,
        device,
    )?;
    let pretrained_path = path.with_file_name("pretrained.json");
    let pretrained = if pretrained_path.exists() {
        let spec = read_spec(&pretrained_path)?;
        Some(mlp_eval_curve::<B>(&spec, None, &tasks, &adapt, device)?)
    } else {
        None
    };
    Ok(MlpEvalReport {
        checkpoint: path.display().to_string(),
        meta_steps: checkpoint.step,
        tasks: num_tasks,
        inner_lr: adapt.inner_lr,
        meta_sgd: checkpoint.step_sizes.is_some(),
        maml,
        pretrained,
    })
}

/// The MAML paper's Figure 3: mean query loss against gradient steps, MAML and
/// pretrained.
pub fn figure3(dir: &Path, report: &MlpEvalReport) -> Result<(), CliError> {
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

impl BackendJob for Figure2Job {
    type Output = ();
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<(), CliError> {
        let checkpoint = MlpCheckpoint::load(&self.checkpoint)?;
        let TaskSource::Sinusoid(family) = &checkpoint.config.tasks else {
            return Err(CliError::Usage(
                "--figure2 needs a checkpoint of the sinusoid family".into(),
            ));
        };
        let family: &SinusoidFamily = family;
        let (sine, task) = family.sample_task(&mut step_rng(self.seed, EVAL_STREAM - 1));
        let grid: Vec<f64> = (0..=200)
            .map(|i| family.x_min + (family.x_max - family.x_min) * i as f64 / 200.0)
            .collect();
        let x: Vec<Vec<f64>> = grid.iter().map(|&v| vec![v]).collect();
        let adapt: AdaptConfig = checkpoint.config.meta.adapt.clone();
        let activation = checkpoint
            .config
            .model
            .as_ref()
            .map_or(Activation::Relu, |m| m.activation);
        let steps = [0, 1, 10];
        let mut series = vec![Series {
            style: Style::Line,
            name: "ground truth".into(),
            points: grid.iter().map(|&v| (v, sine.at(v))).collect(),
        }];
        let mut inits = vec![(
            "MAML",
            checkpoint.weights.clone(),
            checkpoint.step_sizes.clone(),
        )];
        let pretrained = self.checkpoint.with_file_name("pretrained.json");
        if pretrained.exists() {
            inits.push(("pretrained", read_spec(&pretrained)?.weights(), None));
        }
        for (name, weights, sizes) in inits {
            let preds = mlp_adapted_predictions::<B>(
                &spec(weights, activation),
                sizes.as_ref(),
                &task,
                &x,
                &steps,
                &adapt,
                device,
            )?;
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

/// `maml eval` of an MLP checkpoint.
pub struct MlpEvalJob {
    pub checkpoint: PathBuf,
    pub num_tasks: usize,
    pub inner_steps: Option<usize>,
    pub inner_lr: Option<f64>,
    pub seed: u64,
}

impl BackendJob for MlpEvalJob {
    type Output = MlpEvalReport;
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<MlpEvalReport, CliError> {
        evaluate_checkpoint::<B>(
            &self.checkpoint,
            self.num_tasks,
            self.inner_steps,
            self.inner_lr,
            self.seed,
            device,
        )
    }
}

/// Whether a checkpoint file is an MLP checkpoint (by its format tag).
pub fn is_mlp_checkpoint(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_owned))
        .is_some_and(|f| f == MlpCheckpoint::FORMAT)
}

/// Runs an MLP job on the chosen backend.
pub fn run_mlp(job: MlpJob, args: crate::BackendArgs) -> Result<MlpSummary, CliError> {
    dispatch_with(args.backend, args.precision, args.threads, job)
}
