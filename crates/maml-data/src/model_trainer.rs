//! Meta-training of any built-in model on the model-agnostic core (an MLP, a conv net),
//! MAML or Meta-SGD, alone or as one worker of a data-parallel run, and evaluation of
//! what it learned: the adaptation curve, the query accuracy.

use burn::module::{AutodiffModule, Param, ParamId};
use burn::prelude::*;
use serde::Serialize;

use crate::run::TrainConfig;
use crate::stored::{BuiltIn, ConfigInit, Sizes, StoredModel, check_step_table};
use maml_core::algo::learn::{Fast, StepSizes, param_count, query_accuracies};
use maml_core::algo::learner::{ConfiguredOptimizer, ModelLearner};
use maml_core::config::{AdaptConfig, Order};
use maml_core::data::batch::MetaBatch;
use maml_core::data::families::TaskFamily;
use maml_core::data::{LinearWeights, TaskData};
use maml_core::error::Result;
use maml_core::model::SecondOrder;
use maml_core::model::mlp::Mlp;
use maml_core::model::{Learnable, MetaBackend, MetaModel};
use maml_core::model::{check_device_precision, to_f64};
use maml_core::train::any_model::{Trainer, TrainerConfig};
use maml_core::train::guard::StepMetrics;
use maml_core::train::schedule::MetaLrScheduler;

/// Runs meta-training steps of a built-in model `M` (`Mlp<SecondOrder<B>>`,
/// `Layered<SecondOrder<B>>`): the [`Trainer`] of any model, started from a run's
/// configuration and the built-in models' weights as files.
pub struct ModelTrainer<B: Backend, M: BuiltIn<B>> {
    trainer: Trainer<B, M, ConfiguredOptimizer<B, <M as Learnable<B>>::Meta>, MetaLrScheduler>,
}

impl<B: Backend, M: BuiltIn<B>> ModelTrainer<B, M> {
    /// A trainer for `config` with tasks from `family`, starting at meta step
    /// `start_step` from `initial` weights (and Meta-SGD step sizes), or from fresh
    /// weights drawn with `config.seed` (no `config.model`: the linear model, an MLP of
    /// one layer, `M = Mlp<SecondOrder<B>>`).
    pub fn new(
        config: TrainConfig,
        family: Box<dyn TaskFamily>,
        initial: Option<Initial>,
        start_step: usize,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        check_device_precision::<B>(device)?;
        let (model, step_sizes, step_table) = match (initial, &config.model) {
            (Some(initial), _) => initial,
            (None, Some(spec)) => (spec.init(family.as_ref(), config.seed)?, None, None),
            // The linear model, Kaiming-normal as the seed draws it.
            (None, None) => {
                let (d_in, d_out) = (family.d_in(), family.d_out());
                let weights = LinearWeights::kaiming(d_in, d_out, config.seed);
                (StoredModel::linear(weights), None, None)
            }
        };
        model.check_fits(step_sizes.as_ref(), family.as_ref(), "initial weights")?;
        let mut learner =
            ModelLearner::<B, M>::new(M::from_stored(&model, device)?, config.meta.clone())?;
        if let Some(sizes) = step_sizes {
            learner = learner.with_step_sizes(M::from_stored(&sizes, device)?);
        }
        if let Some(rows) = step_table {
            let adapt = &config.meta.adapt;
            let params = param_count::<MetaBackend<B>, M::Meta>(learner.model());
            let (k, p) = (Some(adapt.inner_steps), Some(params));
            check_step_table(Some(&rows), adapt.per_step_lr, k, p, "initial")?;
            learner = learner.with_step_table(table::<B>(&rows, device));
        }
        let lr = config.meta.meta_lr;
        let scheduler = match config.schedule.as_ref().and_then(|s| s.cosine_min_lr) {
            Some(min_lr) => {
                MetaLrScheduler::cosine(lr, min_lr, config.meta_steps).after(start_step)
            }
            None => MetaLrScheduler::Constant(lr),
        };
        let learner = learner.with_scheduler(scheduler);
        let settings = TrainerConfig::new(config.meta_batch)
            .with_seed(config.seed)
            .with_divergence_threshold(config.divergence_threshold)
            .with_schedule(config.schedule.clone());
        let trainer = Trainer::new(learner, family, settings, device)?.with_step(start_step);
        Ok(Self { trainer })
    }

    /// The next meta step's index.
    pub fn step_index(&self) -> usize {
        self.trainer.step_index()
    }

    /// The current initial weights.
    pub fn weights(&self) -> StoredModel {
        M::to_stored(self.trainer.learner().model())
    }

    /// Meta-SGD's step sizes, if learned.
    pub fn step_sizes(&self) -> Option<StoredModel> {
        self.trainer.learner().step_sizes().map(M::to_stored)
    }

    /// MAML++'s per-step step sizes `[K][P]`, if learned.
    pub fn step_table(&self) -> Option<Vec<Vec<f64>>> {
        self.trainer.learner().step_table().map(|t| {
            let [_, p] = t.dims();
            to_f64(t.val().inner())
                .chunks(p.max(1))
                .map(<[f64]>::to_vec)
                .collect()
        })
    }

    /// For how many meta steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.trainer.rising_steps()
    }

    /// The task family.
    pub fn family(&self) -> &dyn TaskFamily {
        self.trainer.family()
    }

    /// One meta step ([`Trainer::step`]).
    pub fn step(&mut self) -> Result<StepMetrics> {
        self.trainer.step()
    }

    /// One data-parallel meta step as worker `rank` of `workers`
    /// ([`Trainer::step_parallel`]).
    pub fn step_parallel(
        &mut self,
        rank: usize,
        workers: usize,
        all_reduce_sum: impl FnOnce(Tensor<B, 1>) -> std::result::Result<Tensor<B, 1>, String>,
    ) -> Result<StepMetrics> {
        self.trainer.step_parallel(rank, workers, all_reduce_sum)
    }
}

/// Where a run starts: its initial weights, Meta-SGD's step sizes and MAML++'s per-step
/// table (a checkpoint's).
pub type Initial = (StoredModel, Option<StoredModel>, Option<Vec<Vec<f64>>>);

/// A per-step table `[K][P]` as a tensor on `B`.
fn table<B: Backend>(rows: &[Vec<f64>], device: &B::Device) -> Tensor<B, 2> {
    let p = rows.first().map_or(0, Vec::len);
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), p]), device)
}

/// Tasks per batch when evaluating many tasks (bounds memory).
const EVAL_CHUNK: usize = 25;

/// The initial weights (and step sizes) of `model` on the meta backend, untracked.
fn lift<B: Backend, M: BuiltIn<B>>(stored: &StoredModel, device: &B::Device) -> Result<M::Meta> {
    Ok(<M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(
        M::from_stored(stored, device)?,
    ))
}

fn check_eval(
    model: &StoredModel,
    sizes: Sizes<'_>,
    tasks: &[TaskData],
    adapt: &AdaptConfig,
) -> Result<usize> {
    adapt.validate()?;
    let (d_in, d_out) = model.shape("model")?;
    if let Some(sizes) = sizes.per_entry {
        model.check_step_sizes(sizes, "model")?;
    }
    maml_core::data::validate_tasks(tasks, d_in, d_out)?;
    Ok(d_out)
}

/// The learned step sizes on the meta backend (untracked).
struct Lifted<B: Backend, M: Learnable<B>> {
    per_entry: Option<M::Meta>,
    per_step: Option<Param<Tensor<MetaBackend<B>, 2>>>,
}

impl<B: Backend, M: Learnable<B>> Lifted<B, M> {
    fn new(sizes: Sizes<'_>, device: &B::Device) -> Result<Self>
    where
        M: BuiltIn<B>,
    {
        Ok(Self {
            per_entry: sizes
                .per_entry
                .map(|s| lift::<B, M>(s, device))
                .transpose()?,
            per_step: sizes.per_step.map(|rows| {
                // Untracked: a leaf that requires gradients would keep every task's
                // graph registered (no backward pass ever frees them here).
                let table = Tensor::from_inner(table::<B>(rows, device));
                Param::initialized(ParamId::new(), table)
            }),
        })
    }

    fn sizes(&self) -> StepSizes<'_, B, M> {
        match (&self.per_entry, &self.per_step) {
            (Some(s), _) => StepSizes::PerEntry(s),
            (_, Some(t)) => StepSizes::PerStep(t),
            _ => StepSizes::Fixed,
        }
    }
}

/// The checked evaluation inputs: the tasks' `out`, and the initial weights and step
/// sizes on the meta backend.
type Prepared<B, M> = (usize, <M as Learnable<B>>::Meta, Lifted<B, M>);

fn prepare<B: Backend, M: BuiltIn<B>>(
    model: &StoredModel,
    sizes: Sizes<'_>,
    tasks: &[TaskData],
    adapt: &AdaptConfig,
    device: &B::Device,
) -> Result<Prepared<B, M>> {
    let d_out = check_eval(model, sizes, tasks, adapt)?;
    check_device_precision::<B>(device)?;
    let initial = lift::<B, M>(model, device)?;
    // Any number of evaluation steps: beyond the table's rows its last row repeats.
    let params = Some(param_count::<MetaBackend<B>, M::Meta>(&initial));
    check_step_table(sizes.per_step, adapt.per_step_lr, None, params, "model")?;
    Ok((d_out, initial, Lifted::new(sizes, device)?))
}

/// The mean query loss on `tasks` after `k = 0..=adapt.inner_steps` first-order inner
/// steps from `model` (with Meta-SGD step sizes when given): an adaptation curve.
pub fn eval_curve<'a, B: Backend, M: BuiltIn<B>>(
    model: &StoredModel,
    step_sizes: impl Into<Sizes<'a>>,
    tasks: &[TaskData],
    adapt: &AdaptConfig,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let (d_out, initial, sizes) = prepare::<B, M>(model, step_sizes.into(), tasks, adapt, device)?;
    let mut sums = vec![0.0; adapt.inner_steps + 1];
    for chunk in tasks.chunks(EVAL_CHUNK) {
        let batch = MetaBatch::<B>::from_tasks(chunk, d_out, device).with_loss(adapt.loss);
        let curve = maml_core::algo::learn::model_adaptation_curve::<B, M>(
            &initial,
            sizes.sizes(),
            &batch,
            adapt,
        );
        for (sum, loss) in sums.iter_mut().zip(curve) {
            *sum += loss * chunk.len() as f64;
        }
    }
    Ok(sums.into_iter().map(|s| s / tasks.len() as f64).collect())
}

/// Each task's query accuracy (the share of query rows whose largest output is the
/// target's class) after `adapt.inner_steps` first-order inner steps from `model` on
/// its support set.
pub fn eval_accuracy<'a, B: Backend, M: BuiltIn<B>>(
    model: &StoredModel,
    step_sizes: impl Into<Sizes<'a>>,
    tasks: &[TaskData],
    adapt: &AdaptConfig,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let (d_out, initial, sizes) = prepare::<B, M>(model, step_sizes.into(), tasks, adapt, device)?;
    let adapt = adapt.clone().with_order(Order::First);
    let mut out = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(EVAL_CHUNK) {
        let batch = MetaBatch::<B>::from_tasks(chunk, d_out, device).with_loss(adapt.loss);
        let fast = maml_core::algo::learn::adapt_model::<B, M>(
            &initial,
            sizes.sizes(),
            &batch.support,
            &adapt,
        )
        .valid();
        let accuracy = query_accuracies::<B, M::Plain>(&fast, &batch.query, adapt.inner_steps);
        out.extend(to_f64(accuracy));
    }
    Ok(out)
}

/// Predictions at `x [n][in]` of `model` adapted to one task's support set, after each
/// number of first-order inner steps in `steps` (e.g. `[0, 1, 10]`): `[steps][n][out]`.
pub fn adapted_predictions<'a, B: Backend, M: BuiltIn<B>>(
    model: &StoredModel,
    step_sizes: impl Into<Sizes<'a>>,
    task: &TaskData,
    x: &[Vec<f64>],
    steps: &[usize],
    adapt: &AdaptConfig,
    device: &B::Device,
) -> Result<Vec<Vec<Vec<f64>>>> {
    let probe = TaskData {
        support: task.support.clone(),
        query: maml_core::data::SetData {
            x: x.to_vec(),
            y: None,
        },
    };
    let (d_out, initial, sizes) = prepare::<B, M>(
        model,
        step_sizes.into(),
        std::slice::from_ref(&probe),
        adapt,
        device,
    )?;
    let batch = MetaBatch::<B>::from_tasks(std::slice::from_ref(&probe), d_out, device)
        .with_loss(adapt.loss);
    let mut out = Vec::new();
    for &k in steps {
        let config = adapt.clone().with_inner_steps(k).with_order(Order::First);
        let fast = maml_core::algo::learn::adapt_model::<B, M>(
            &initial,
            sizes.sizes(),
            &batch.support,
            &config,
        );
        let fast = match fast {
            Fast::Batched(m) => m,
            Fast::PerTask(mut ms) => ms.remove(0),
        };
        let x = Tensor::from_inner(batch.query.x.clone());
        let pred = MetaModel::forward_at(&fast, x, k).inner();
        out.push(to_f64(pred).chunks(d_out).map(<[f64]>::to_vec).collect());
    }
    Ok(out)
}

/// Query loss before and after adaptation on a set of tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Number of tasks.
    pub tasks: usize,
    /// Mean query loss after `k` inner steps, `k = 0..=inner_steps`.
    pub curve: Vec<f64>,
    /// Mean query loss before adaptation (`curve[0]`).
    pub before: f64,
    /// Mean query loss after `inner_steps` steps (`curve[inner_steps]`).
    pub after: f64,
}

/// Evaluates the linear model's initial weights on `tasks` with the inner loop of
/// `config` (first order).
pub fn evaluate<B: Backend>(
    weights: &LinearWeights,
    tasks: &[TaskData],
    config: &AdaptConfig,
    device: &B::Device,
) -> maml_core::error::Result<EvalReport> {
    weights.validate("weights")?;
    let model = StoredModel::linear(weights.clone());
    let curve = eval_curve::<B, Mlp<SecondOrder<B>>>(&model, None, tasks, config, device)?;
    Ok(EvalReport {
        tasks: tasks.len(),
        before: curve[0],
        after: *curve
            .last()
            .expect("the curve has inner_steps + 1 >= 1 points"),
        curve,
    })
}
