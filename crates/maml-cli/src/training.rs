//! A `maml train` run, for every built-in model (the linear model, an MLP, a conv net):
//! MAML or Meta-SGD, alone, on threads or on MPI ranks; its outputs (checkpoints,
//! metrics, weights, plots), the pretrained baseline and the MAML paper's figures, the
//! linear model's comparison of orders.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::Order;
use maml_burn::maml_core::data::write_atomic;
use maml_burn::maml_data::closed_form::Optimum;
use maml_burn::maml_data::model_trainer::ModelTrainer;
use maml_burn::maml_data::run::TrainConfig;
use maml_burn::maml_data::stored::BuiltIn;
use maml_burn::maml_data::stored::ModelJob;
use maml_burn::maml_data::stored::StoredModel;
use serde::Serialize;

use crate::compare::compare_orders;
use crate::error::CliError;
use crate::eval::evaluate_dir;
use crate::figures::figure3;
use crate::metrics::{Row, metrics_csv};
use crate::plot::{MOVING_AVERAGE_FROM, Series, Style, line_plot, with_moving_average};
use crate::progress::{loss_message, progress};
use crate::validation::{Scored, Validator};
use crate::weights::{write_json, write_model};
use crate::workers::{Event, Initial, Reduce, WorkerParts, run_workers};

/// A training run.
pub struct TrainJob {
    pub config: TrainConfig,
    pub initial: Option<Initial>,
    pub start_step: usize,
    /// The metrics of the steps before `start_step` (a resumed run's).
    pub rows: Vec<Row>,
    pub out: PathBuf,
    pub checkpoint_every: usize,
    pub eval_tasks: usize,
    /// Meta steps of the pretrained baseline (0: none).
    pub baseline_steps: usize,
    /// The linear model on a fixed task set: its exact optimum, to measure the distance of
    /// every step's weights to it.
    pub optimum: Option<Optimum>,
    /// The linear model: train the other order too and compare them.
    pub compare: bool,
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

/// The pretrained baseline: the run's model trained on the pooled tasks without
/// adaptation; its weights and per-step losses.
struct Baseline<'a, B: Backend> {
    config: TrainConfig,
    steps: usize,
    device: &'a B::Device,
}

impl<B: Backend> ModelJob<B> for Baseline<'_, B> {
    type Output = Result<(StoredModel, Vec<(f64, f64)>), CliError>;

    fn run<M: BuiltIn<B>>(self) -> Self::Output {
        let family = self.config.tasks.family()?;
        let mut baseline = ModelTrainer::<B, M>::new(self.config, family, None, 0, self.device)?;
        let bar = progress(self.steps, 0, "pretrain  ");
        let mut rows = Vec::new();
        while baseline.step_index() < self.steps {
            let m = baseline.step()?;
            rows.push((m.step as f64, m.meta_loss));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok((baseline.weights(), rows))
    }
}

/// What a training run prints at the end.
#[derive(Debug, Serialize)]
pub struct Summary {
    out: String,
    backend: String,
    meta_steps: usize,
    final_meta_loss: f64,
    seconds: f64,
    meta_steps_per_s: f64,
    baseline_seconds: f64,
    /// The best validation (its checkpoint is `best.json`); absent without validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    best_validation: Option<Scored>,
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
        .with_meta_sgd(false)
        .with_imaml(None)
        .with_inner_checkpoint_every(None);
    base.meta_steps = steps;
    base
}

impl BackendJob for TrainJob {
    type Output = Summary;
    type Error = CliError;

    fn run<B: Backend>(mut self, device: &B::Device) -> Result<Summary, CliError> {
        if let Parallel::Mpi { rank, size } = self.parallel
            && rank != 0
        {
            return self.follow::<B>(rank, size, device);
        }
        let steps = self.config.meta_steps;
        let bar = progress(steps, self.start_step, "meta-train");
        let started = Instant::now();
        let mut rows = std::mem::take(&mut self.rows);
        let mut last_good = None;
        let mut finished = None;
        let mut failure = None;
        let mut validator = Validator::new(&self.config, &self.out, self.start_step)?;
        let mut handle = |event: Event| -> Result<(), CliError> {
            match event {
                Event::Step {
                    step,
                    meta_loss,
                    before,
                    rising,
                    accuracy,
                    distances,
                } => {
                    rows.push(Row {
                        step,
                        meta_loss,
                        before,
                        accuracy,
                        distances,
                    });
                    if step % 50 == 0 || rising >= 20 {
                        let mut message = loss_message(meta_loss, rising);
                        if let Some(a) = accuracy {
                            message.push_str(&format!(", query accuracy {:.1}%", 100.0 * a));
                        }
                        bar.set_message(message);
                    }
                    bar.inc(1);
                }
                Event::Checkpoint(checkpoint) => {
                    let step = checkpoint.step;
                    write_json(&self.out.join("checkpoint.json"), &checkpoint)?;
                    let csv = metrics_csv(&rows);
                    write_atomic(&self.out.join("metrics.csv"), csv.as_bytes())?;
                    last_good = Some(step);
                    if let Some(validator) = validator.as_mut() {
                        let scored = validator.score::<B>(&checkpoint, device)?;
                        bar.set_message(validation_message(&scored));
                    }
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
        let (weights, step_sizes, _) =
            finished.expect("a run that did not fail reports its final weights");
        let linear = self.config.model.is_none();
        write_model(&self.out.join("weights.json"), &weights, linear)?;
        if let Some(sizes) = &step_sizes {
            write_model(&self.out.join("step_sizes.json"), sizes, linear)?;
        }
        write_atomic(&self.out.join("metrics.csv"), metrics_csv(&rows).as_bytes())?;
        let order = self.config.meta.adapt.order;
        let mut series = vec![Series {
            style: Style::Line,
            name: format!("{order}-order MAML"),
            points: rows.iter().map(|r| (r.step as f64, r.meta_loss)).collect(),
        }];
        accuracy_plot(&self.out, &rows, validator.as_ref(), &series[0].name)?;
        if let Some(validator) = validator.as_ref().filter(|_| !classifies(&rows)) {
            series.push(validator.series());
        }
        if self.compare
            && linear
            && let Some(final_weights) = weights.as_linear()
        {
            let compared = compare_orders::<B>(
                &self.config,
                &rows,
                final_weights,
                self.optimum.as_ref(),
                &self.out,
                self.eval_tasks,
                device,
            )?;
            series.extend(compared);
        }

        let baseline_started = Instant::now();
        if self.baseline_steps > 0 {
            let (pretrained, base_rows) = weights.kind().dispatch::<B, _>(Baseline {
                config: baseline_config(&self.config, self.baseline_steps),
                steps: self.baseline_steps,
                device,
            })?;
            write_model(&self.out.join("pretrained.json"), &pretrained, linear)?;
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
            let report = evaluate_dir::<B>(&self.out, self.eval_tasks, device)?;
            figure3(
                &self.out,
                report.tasks,
                &report.maml,
                report.pretrained.as_deref(),
            )?;
        }
        let done = steps.saturating_sub(self.start_step);
        Ok(Summary {
            out: self.out.display().to_string(),
            backend: B::name(device),
            meta_steps: steps,
            final_meta_loss: rows.last().map_or(f64::NAN, |r| r.meta_loss),
            seconds,
            meta_steps_per_s: done as f64 / seconds.max(1e-9),
            baseline_seconds,
            best_validation: validator.as_ref().and_then(|v| v.best().copied()),
        })
    }
}

impl TrainJob {
    /// What every worker of this job needs.
    fn parts(&self) -> WorkerParts<'_> {
        WorkerParts {
            config: &self.config,
            initial: &self.initial,
            start_step: self.start_step,
            checkpoint_every: self.checkpoint_every,
            optimum: self.optimum.as_ref(),
        }
    }

    /// Trains as MPI rank `rank` (not 0) of `size`: the same meta steps as rank 0, on
    /// this rank's share of every meta-batch, writing nothing.
    fn follow<B: Backend>(
        self,
        rank: usize,
        size: usize,
        device: &B::Device,
    ) -> Result<Summary, CliError> {
        let started = Instant::now();
        let parts = self.parts();
        parts.run::<B>(rank, size, Reduce::Mpi, device, &mut |_| Ok(()))?;
        let seconds = started.elapsed().as_secs_f64();
        let done = self.config.meta_steps.saturating_sub(self.start_step);
        Ok(Summary {
            out: String::new(),
            backend: B::name(device),
            meta_steps: self.config.meta_steps,
            final_meta_loss: f64::NAN,
            seconds,
            meta_steps_per_s: done as f64 / seconds.max(1e-9),
            baseline_seconds: 0.0,
            best_validation: None,
        })
    }
}

/// Whether the run's steps recorded a query accuracy (classification).
fn classifies(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.accuracy.is_some())
}

/// The progress bar's message after a validation.
fn validation_message(scored: &Scored) -> String {
    match scored.accuracy {
        Some(a) => format!("validation accuracy {:.1}%", 100.0 * a),
        None => format!("validation loss {:.4e}", scored.loss),
    }
}

/// Classification: `accuracy.svg`, the training tasks' query accuracy after adaptation
/// at every step (with its moving average) and the held-out tasks' at every checkpoint.
fn accuracy_plot(
    out: &std::path::Path,
    rows: &[Row],
    validator: Option<&Validator>,
    name: &str,
) -> Result<(), CliError> {
    if !classifies(rows) {
        return Ok(());
    }
    let mut series = vec![Series {
        style: Style::Line,
        name: format!("{name}, training tasks"),
        points: rows
            .iter()
            .filter_map(|r| Some((r.step as f64, r.accuracy?)))
            .collect(),
    }];
    series.extend(validator.map(Validator::series));
    line_plot(
        &out.join("accuracy.svg"),
        "Query accuracy after adaptation",
        "meta step",
        "accuracy",
        &with_moving_average(series, MOVING_AVERAGE_FROM),
        false,
    )
}

/// Prints a run's summary: one line on stderr, the JSON object on stdout.
pub fn report(summary: &Summary) {
    eprintln!(
        "trained {} meta steps in {:.2} s ({:.0} meta-steps/s) on {}; final meta-loss {:.6e}; \
         wrote {}",
        summary.meta_steps,
        summary.seconds,
        summary.meta_steps_per_s,
        summary.backend,
        summary.final_meta_loss,
        summary.out
    );
    crate::print_json(summary);
}

/// Runs a training job on the chosen backend.
pub fn run_training(job: TrainJob, args: crate::BackendArgs) -> Result<Summary, CliError> {
    dispatch_with(args.backend, args.precision, args.threads, job)
}
