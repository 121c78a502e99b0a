//! Meta-training of any model ([`Trainer`]): meta-batches drawn from a task family with a
//! seeded stream, the learner's meta steps, a divergence guard, the query accuracy of
//! classification, data-parallel shards, checkpoints through Burn's recorders (weights,
//! Meta-SGD's step sizes, the optimiser's and the scheduler's state), and evaluation on
//! fresh tasks (the adaptation curve, the accuracy with its 95 % interval).

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{LearningRate, Optimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use serde::{Deserialize, Serialize};

use crate::algo::learn::{model_adaptation_curve, query_accuracies};
use crate::algo::learner::{ConfiguredOptimizer, ModelLearner};
use crate::config::AdaptConfig;
use crate::config::Loss;
use crate::data::TaskData;
use crate::data::batch::MetaBatch;
use crate::data::families::TaskFamily;
use crate::error::MamlError;
use crate::model::{Learnable, MetaBackend, MetaModel, to_f64};
use crate::train::guard::{DivergenceGuard, StepMetrics, step_rng};
use crate::train::schedule::Schedule;

/// What a [`Trainer`] needs besides its learner and task family.
#[derive(Config, Debug)]
pub struct TrainerConfig {
    /// Tasks per meta-batch.
    pub meta_batch: usize,
    /// Seed of every meta-batch: meta step `s` draws its tasks from one stream seeded by
    /// `(seed, s)`, so a resumed run draws the tasks the uninterrupted run would.
    #[config(default = 0)]
    pub seed: u64,
    /// Stop as diverged when the meta-loss rises above this many times its lowest value
    /// so far (`None`: only non-finite values stop a run).
    #[config(default = "None")]
    pub divergence_threshold: Option<f64>,
    /// MAML++'s schedules by meta step (derivative-order and multi-step loss annealing);
    /// `None`: the learner's inner loop at every step.
    #[config(default = "None")]
    pub schedule: Option<Schedule>,
}

/// How a model did on fresh tasks ([`Trainer::evaluate`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Number of tasks.
    pub tasks: usize,
    /// Mean query loss after `k` inner steps, `k = 0..=steps`.
    pub curve: Vec<f64>,
    /// Mean query accuracy after the inner loop (classification), with the half-width of
    /// its 95 % interval over the tasks (`1.96 s / √n`).
    pub accuracy: Option<(f64, f64)>,
}

/// The step a checkpoint was taken at (`state.json` beside the records).
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    format: String,
    step: usize,
}

const FORMAT: &str = "maml-burn trainer checkpoint v1";

/// Meta-trains any model `M` with its learner (any `burn::optim` optimizer `O` and
/// scheduler `S`) on tasks from a family.
pub struct Trainer<
    B: Backend,
    M: Learnable<B>,
    O = ConfiguredOptimizer<B, <M as Learnable<B>>::Meta>,
    S = LearningRate,
> where
    O: Optimizer<M::Meta, MetaBackend<B>>,
    S: LrScheduler,
{
    learner: ModelLearner<B, M, O, S>,
    family: Box<dyn TaskFamily>,
    config: TrainerConfig,
    step: usize,
    guard: DivergenceGuard,
    base: AdaptConfig,
    device: B::Device,
}

impl<B, M, O, S> Trainer<B, M, O, S>
where
    B: Backend,
    M: Learnable<B>,
    O: Optimizer<M::Meta, MetaBackend<B>>,
    S: LrScheduler,
{
    /// A trainer at meta step 0, after checking `config`.
    pub fn new(
        learner: ModelLearner<B, M, O, S>,
        family: Box<dyn TaskFamily>,
        config: TrainerConfig,
        device: &B::Device,
    ) -> crate::error::Result<Self> {
        if config.meta_batch == 0 {
            return Err(MamlError::InvalidHyperparameter {
                name: "meta_batch",
                value: "0".into(),
                reason: "a meta-batch needs at least one task",
            });
        }
        if let Some(schedule) = &config.schedule {
            schedule.validate()?;
        }
        Ok(Self {
            guard: DivergenceGuard::new(config.divergence_threshold),
            base: learner.adapt_config().clone(),
            learner,
            family,
            config,
            step: 0,
            device: device.clone(),
        })
    }

    /// Continues from meta step `step` (a run restarted from weights saved elsewhere).
    pub fn with_step(mut self, step: usize) -> Self {
        self.step = step;
        self
    }

    /// The next meta step's index.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// The learner.
    pub fn learner(&self) -> &ModelLearner<B, M, O, S> {
        &self.learner
    }

    /// The task family.
    pub fn family(&self) -> &dyn TaskFamily {
        self.family.as_ref()
    }

    /// For how many meta steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.guard.rising_steps()
    }

    /// Sets the learner's inner loop for meta step `step` by the schedule, if any.
    fn schedule(&mut self, step: usize) -> crate::error::Result<()> {
        match &self.config.schedule {
            Some(schedule) => self.learner.set_adapt(schedule.adapt_at(&self.base, step)),
            None => Ok(()),
        }
    }

    fn batch(&self, tasks: &[TaskData]) -> MetaBatch<B> {
        MetaBatch::from_tasks(tasks, self.family.d_out(), &self.device)
            .with_loss(self.learner.adapt_config().loss)
    }

    /// One meta step. A non-finite meta-loss, or one above the divergence threshold, is
    /// an error ([`MamlError::Diverged`], [`MamlError::DivergedAbove`]). For
    /// classification (cross-entropy) the metrics hold the query accuracy of the fast
    /// weights.
    pub fn step(&mut self) -> crate::error::Result<StepMetrics> {
        let step = self.step;
        self.schedule(step)?;
        let tasks = self.family.sample(
            self.config.meta_batch,
            &mut step_rng(self.config.seed, step),
        );
        let batch = self.batch(&tasks);
        // On the plain backend: a forward pass of the tracked initial weights that is
        // never differentiated would stay in Burn's autodiff graph (the MLP's
        // meta-gradient runs no backward pass there to clean it up).
        let initial = self.learner.model().valid();
        let before = batch
            .query
            .task_losses(MetaModel::forward_at(&initial, batch.query.x.clone(), 0))
            .mean();
        let classify = self.learner.adapt_config().loss == Loss::CrossEntropy;
        let (meta_loss, accuracy) = if classify {
            let mut gradient = self.learner.meta_gradient(&batch);
            let fast = gradient
                .fast
                .take()
                .expect("meta_gradient keeps the fast weights");
            let steps = self.learner.adapt_config().inner_steps;
            let accuracy = query_accuracies::<B, M::Plain>(&fast, &batch.query, steps).mean();
            self.learner.apply(&mut gradient);
            (gradient.meta_loss, Some(to_f64(accuracy)[0]))
        } else {
            (self.learner.step(&batch).meta_loss, None)
        };
        let [meta_loss, before] = [meta_loss, before].map(|t| to_f64(t)[0]);
        self.guard.check(step, meta_loss, before)?;
        self.step += 1;
        Ok(StepMetrics {
            step,
            meta_loss,
            query_loss_before: before,
            query_loss_after: meta_loss,
            query_accuracy: accuracy,
        })
    }

    /// One data-parallel meta step as worker `rank` of `workers`: every worker draws the
    /// same meta-batch (same seeded stream), takes its shard
    /// ([`crate::data::batch::shard_range`]), and `all_reduce_sum` sums the workers' scaled
    /// shares ([`ModelLearner::step_shard`]); every worker applies the same update and
    /// sees the same meta-loss, so all stop together on divergence. `query_loss_before`
    /// is not computed (NaN), nor the accuracy.
    pub fn step_parallel(
        &mut self,
        rank: usize,
        workers: usize,
        all_reduce_sum: impl FnOnce(Tensor<B, 1>) -> std::result::Result<Tensor<B, 1>, String>,
    ) -> crate::error::Result<StepMetrics> {
        let step = self.step;
        self.schedule(step)?;
        let tasks = self.family.sample(
            self.config.meta_batch,
            &mut step_rng(self.config.seed, step),
        );
        let range = crate::data::batch::shard_range(tasks.len(), workers, rank);
        if range.is_empty() {
            return Err(MamlError::InvalidHyperparameter {
                name: "workers",
                value: workers.to_string(),
                reason: "more workers than tasks in a meta-batch: every worker needs a task",
            });
        }
        let weight = range.len() as f64 / tasks.len() as f64;
        let batch = self.batch(&tasks[range]);
        let meta_loss = self
            .learner
            .step_shard(&batch, weight, all_reduce_sum)
            .map_err(|detail| MamlError::Distributed { step, detail })?;
        self.guard.check(step, meta_loss, f64::NAN)?;
        self.step += 1;
        Ok(StepMetrics {
            step,
            meta_loss,
            query_loss_before: f64::NAN,
            query_loss_after: meta_loss,
            query_accuracy: None,
        })
    }

    /// The learner's weights on fresh `tasks`: the mean query loss after `0..=steps`
    /// inner steps, and for classification the accuracy after `steps` steps with its 95 %
    /// interval. Tasks are scored 25 at a time (bounded memory).
    pub fn evaluate(&self, tasks: &[TaskData], steps: usize) -> crate::error::Result<Evaluation> {
        crate::data::validate_tasks(tasks, self.family.d_in(), self.family.d_out())?;
        let adapt = self.learner.adapt_config().clone().with_inner_steps(steps);
        let mut sums = vec![0.0; steps + 1];
        let mut accuracies = Vec::with_capacity(tasks.len());
        let classify = adapt.loss == Loss::CrossEntropy;
        for chunk in tasks.chunks(25) {
            let batch = self.batch(chunk);
            let curve = model_adaptation_curve::<B, M>(
                self.learner.model(),
                self.learner.step_sizes(),
                &batch,
                &adapt,
            );
            for (sum, loss) in sums.iter_mut().zip(curve) {
                *sum += loss * chunk.len() as f64;
            }
            if classify {
                let fast = crate::algo::learn::adapt_model::<B, M>(
                    self.learner.model(),
                    self.learner.step_sizes(),
                    &batch.support,
                    &adapt.clone().with_order(crate::config::Order::First),
                )
                .valid();
                let accuracy = query_accuracies::<B, M::Plain>(&fast, &batch.query, steps);
                accuracies.extend(to_f64(accuracy));
            }
        }
        let n = tasks.len() as f64;
        let accuracy = classify.then(|| {
            let mean = accuracies.iter().sum::<f64>() / n;
            let var =
                accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            (mean, 1.96 * (var / n).sqrt())
        });
        Ok(Evaluation {
            tasks: tasks.len(),
            curve: sums.into_iter().map(|s| s / n).collect(),
            accuracy,
        })
    }

    /// Saves a checkpoint in the folder `dir`: the weights, the learned step sizes, the
    /// optimiser's and the scheduler's state (Burn's `NamedMpkFileRecorder`, full
    /// precision) and the next step (`state.json`). It is written whole into `dir.tmp`
    /// first, and only then takes the place of the checkpoint in `dir`: an interrupted save
    /// leaves the earlier checkpoint in `dir` (or, between the two renames, in `dir.old`,
    /// which [`Self::resume`] reads).
    pub fn save(&self, dir: &Path) -> crate::error::Result<()> {
        let tmp = sibling(dir, "tmp");
        let old = sibling(dir, "old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| MamlError::io("cannot remove", &tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| MamlError::io("cannot create", &tmp, e))?;
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let record = |name: &str| tmp.join(name);
        let fail = |name: &str, e: burn::record::RecorderError| MamlError::Record {
            path: tmp.join(name),
            detail: e.to_string(),
        };
        let learner = &self.learner;
        Recorder::<B>::record(
            &recorder,
            learner.model().valid().into_record(),
            record("model"),
        )
        .map_err(|e| fail("model", e))?;
        if let Some(sizes) = learner.step_sizes() {
            Recorder::<B>::record(&recorder, sizes.valid().into_record(), record("step_sizes"))
                .map_err(|e| fail("step_sizes", e))?;
        }
        if let Some(table) = learner.step_table() {
            Recorder::<B>::record(&recorder, table.valid().into_record(), record("step_table"))
                .map_err(|e| fail("step_table", e))?;
        }
        let (optim, size_optim, scheduler) = learner.states();
        Recorder::<MetaBackend<B>>::record(&recorder, optim.to_record(), record("optimizer"))
            .map_err(|e| fail("optimizer", e))?;
        Recorder::<MetaBackend<B>>::record(
            &recorder,
            size_optim.to_record(),
            record("step_size_optimizer"),
        )
        .map_err(|e| fail("step_size_optimizer", e))?;
        Recorder::<B>::record(&recorder, scheduler.to_record::<B>(), record("scheduler"))
            .map_err(|e| fail("scheduler", e))?;
        let state = CheckpointState {
            format: FORMAT.into(),
            step: self.step,
        };
        let json = serde_json::to_string_pretty(&state).expect("the state serialises");
        let path = tmp.join("state.json");
        std::fs::write(&path, json).map_err(|e| MamlError::io("cannot write", &path, e))?;
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old)
                    .map_err(|e| MamlError::io("cannot remove", &old, e))?;
            }
            std::fs::rename(dir, &old).map_err(|e| MamlError::io("cannot move", dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| MamlError::io("cannot move", &tmp, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| MamlError::io("cannot remove", &old, e))?;
        }
        Ok(())
    }

    /// Continues from the checkpoint in the folder `dir` ([`Self::save`]): its weights,
    /// step sizes, optimiser and scheduler state and step. The learner must be built
    /// for the same model (the records are loaded into its structure). A missing `dir`
    /// whose save was interrupted between its renames is read from `dir.old`.
    pub fn resume(mut self, dir: &Path) -> crate::error::Result<Self> {
        let old = sibling(dir, "old");
        let dir = if !dir.exists() && old.exists() {
            old.as_path()
        } else {
            dir
        };
        let path = dir.join("state.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| MamlError::io("cannot read", &path, e))?;
        let state: CheckpointState = serde_json::from_str(&text)
            .map_err(|e| MamlError::json(path.display().to_string(), &e))?;
        if state.format != FORMAT {
            return Err(MamlError::BadData {
                location: path.display().to_string(),
                detail: format!("format {:?}, expected {FORMAT:?}", state.format),
            });
        }
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let fail = |name: &str, e: burn::record::RecorderError| MamlError::Record {
            path: dir.join(name),
            detail: e.to_string(),
        };
        let device = self.device.clone();
        let model = Recorder::<B>::load(&recorder, dir.join("model"), &device)
            .map_err(|e| fail("model", e))?;
        let model = self.learner.model().valid().load_record(model);
        let sizes = match self.learner.step_sizes() {
            Some(sizes) => {
                let record = Recorder::<B>::load(&recorder, dir.join("step_sizes"), &device)
                    .map_err(|e| fail("step_sizes", e))?;
                Some(sizes.valid().load_record(record))
            }
            None => None,
        };
        let table = match self.learner.step_table() {
            Some(table) => {
                let record = Recorder::<B>::load(&recorder, dir.join("step_table"), &device)
                    .map_err(|e| fail("step_table", e))?;
                Some(table.valid().load_record(record).val())
            }
            None => None,
        };
        let optim = Recorder::<MetaBackend<B>>::load(&recorder, dir.join("optimizer"), &device)
            .map_err(|e| fail("optimizer", e))?;
        let size_optim =
            Recorder::<MetaBackend<B>>::load(&recorder, dir.join("step_size_optimizer"), &device)
                .map_err(|e| fail("step_size_optimizer", e))?;
        let scheduler = Recorder::<B>::load(&recorder, dir.join("scheduler"), &device)
            .map_err(|e| fail("scheduler", e))?;
        self.learner = self
            .learner
            .restore(model, sizes, optim, size_optim, scheduler);
        if let Some(table) = table {
            self.learner = self.learner.with_step_table(table);
        }
        self.step = state.step;
        Ok(self)
    }
}

/// `dir` with `.suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}
