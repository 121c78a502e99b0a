//! The workers of a `maml train` run: each trains the run's model on its share of every
//! meta-batch (alone, on threads of this process on burn-collective, or as an MPI rank)
//! and reports its steps and checkpoints to the thread that writes the outputs.

use burn::prelude::Backend;
use maml_burn::maml_data::closed_form::Optimum;
use maml_burn::maml_data::model_trainer::ModelTrainer;
use maml_burn::maml_data::run::TrainConfig;
use maml_burn::maml_data::stored::BuiltIn;
use maml_burn::maml_data::stored::ConfigInit;
use maml_burn::maml_data::stored::ModelCheckpoint;
use maml_burn::maml_data::stored::ModelJob;
use maml_burn::maml_data::stored::ModelKind;

use crate::compare::distances;
use crate::error::CliError;

/// Initial weights and Meta-SGD's step sizes.
pub use maml_burn::maml_data::model_trainer::Initial;

/// How a worker sums the shares of a meta step.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reduce {
    /// Nothing to sum: the whole meta-batch.
    Alone,
    /// burn-collective, between threads.
    Collective,
    /// MPI, between processes.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Mpi,
}

/// What a training worker reports to the thread that writes the outputs.
pub(crate) enum Event {
    Step {
        step: usize,
        meta_loss: f64,
        before: f64,
        rising: usize,
        accuracy: Option<f64>,
        distances: Option<(f64, f64)>,
    },
    Checkpoint(Box<ModelCheckpoint>),
    Done(Initial),
    Failed(CliError),
}

/// What every worker needs to train.
pub(crate) struct WorkerParts<'a> {
    pub(crate) config: &'a TrainConfig,
    pub(crate) initial: &'a Option<Initial>,
    pub(crate) start_step: usize,
    pub(crate) checkpoint_every: usize,
    pub(crate) optimum: Option<&'a Optimum>,
}

impl WorkerParts<'_> {
    /// The kind of model the run trains.
    fn kind(&self) -> Result<ModelKind, CliError> {
        kind_of(self.config, self.initial)
    }

    /// Trains as worker `rank` of `workers` (1: alone), reporting to `emit` (rank 0's
    /// events are the run's).
    pub(crate) fn run<B: Backend>(
        &self,
        rank: usize,
        workers: usize,
        reduce: Reduce,
        device: &B::Device,
        emit: &mut dyn FnMut(Event) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        self.kind()?.dispatch::<B, _>(Worker {
            parts: self,
            rank,
            workers,
            reduce,
            device,
            emit,
        })
    }
}

/// The model kind of a run: its initial weights', else its configuration's (none: the
/// linear model, an MLP of one layer).
fn kind_of(config: &TrainConfig, initial: &Option<Initial>) -> Result<ModelKind, CliError> {
    Ok(match (initial, &config.model) {
        (Some((model, _, _)), _) => model.kind(),
        (None, Some(model)) => model.kind(),
        (None, None) => ModelKind::Mlp,
    })
}

/// One worker's training loop, for the run's model type.
struct Worker<'a, 'p, B: Backend> {
    parts: &'a WorkerParts<'p>,
    rank: usize,
    workers: usize,
    reduce: Reduce,
    device: &'a B::Device,
    emit: &'a mut dyn FnMut(Event) -> Result<(), CliError>,
}

impl<B: Backend> ModelJob<B> for Worker<'_, '_, B> {
    type Output = Result<(), CliError>;

    fn run<M: BuiltIn<B>>(self) -> Result<(), CliError> {
        let Worker {
            parts,
            rank,
            workers,
            reduce,
            device,
            emit,
        } = self;
        let steps = parts.config.meta_steps;
        let mut trainer = ModelTrainer::<B, M>::new(
            parts.config.clone(),
            parts.config.tasks.family()?,
            parts.initial.clone(),
            parts.start_step,
            device,
        )?;
        let checkpoint = |t: &ModelTrainer<B, M>, step: usize| {
            Event::Checkpoint(Box::new(ModelCheckpoint {
                format: ModelCheckpoint::FORMAT.into(),
                step,
                config: parts.config.clone(),
                model: t.weights(),
                step_sizes: t.step_sizes(),
                step_table: t.step_table(),
            }))
        };
        if rank == 0 {
            // The starting point is a checkpoint too (a run that diverges at once).
            emit(checkpoint(&trainer, parts.start_step))?;
        }
        let peer = burn_collective::PeerId(rank as u32);
        while trainer.step_index() < steps {
            let distances = match parts.optimum {
                Some(optimum) if rank == 0 => {
                    trainer.weights().as_linear().map(|w| distances(w, optimum))
                }
                _ => None,
            };
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
                    accuracy: m.query_accuracy,
                    distances,
                })?;
                let done = trainer.step_index();
                if done % parts.checkpoint_every == 0 || done == steps {
                    emit(checkpoint(&trainer, done))?;
                }
            }
        }
        if rank == 0 {
            emit(Event::Done((
                trainer.weights(),
                trainer.step_sizes(),
                trainer.step_table(),
            )))?;
        }
        Ok(())
    }
}

/// Trains with `workers` threads, each with its own device handle, registered with
/// burn-collective; the calling thread writes rank 0's outputs. A worker that fails or
/// panics ends the whole process with one `error:` line (the others may be waiting in
/// an all-reduce that can no longer complete: burn-collective has no time-outs).
pub(crate) fn run_workers<B: Backend>(
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
