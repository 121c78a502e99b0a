//! The meta-learner: [`ModelLearner`] adapts any model to a task ([`ModelLearner::adapt`]),
//! gives the meta-loss of a meta-batch tracked back to its initial weights
//! ([`ModelLearner::meta_loss`]), and takes meta steps ([`ModelLearner::step`]): the
//! meta-gradient ([`crate::algo::learn`]), then an update of the initial weights (and
//! Meta-SGD's step sizes) by any `burn::optim` optimizer with any Burn learning-rate
//! scheduler, on one machine or as one worker of a data-parallel step.

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{
    Adam, AdamConfig, GradientsParams, LearningRate, MultiGradientsParams, Optimizer, Sgd,
    SgdConfig,
};
use burn::prelude::*;

use burn::module::{Param, ParamId};

use crate::algo::learn::{
    MetaLoss, ModelMetaGradient, StepSizes, adapt_model, meta_gradient_keeping, param_count,
};
use crate::config::{AdaptConfig, GradientPath, MetaConfig, MetaOptimizer, Order};
use crate::data::batch::{MetaBatch, Sets};
use crate::error::{MamlError, Result};
use crate::model::{Fill, Learnable, MetaBackend, Untracked};

use super::gradient::Fast;

mod shard;

/// The meta-optimiser named by [`MetaConfig::meta_optimizer`] (Burn's SGD or Adam with
/// their defaults), for a learner configured by a [`MetaConfig`]
/// ([`ModelLearner::new`]). Any other `burn::optim` optimizer is passed to
/// [`ModelLearner::with_optimizer`] as it is. Its record is empty: training checkpoints
/// store the weights, not the optimiser's moments.
#[derive(Clone)]
pub enum ConfiguredOptimizer<B: Backend, M: AutodiffModule<MetaBackend<B>>> {
    /// Plain gradient descent.
    Sgd(OptimizerAdaptor<Sgd<B>, M, MetaBackend<B>>),
    /// Adam.
    Adam(OptimizerAdaptor<Adam, M, MetaBackend<B>>),
}

impl<B: Backend, M: AutodiffModule<MetaBackend<B>>> ConfiguredOptimizer<B, M> {
    /// The optimiser of `kind`, with Burn's defaults.
    pub fn new(kind: MetaOptimizer) -> Self {
        match kind {
            MetaOptimizer::Sgd => Self::Sgd(SgdConfig::new().init()),
            MetaOptimizer::Adam => Self::Adam(AdamConfig::new().init()),
        }
    }
}

impl<B: Backend, M: AutodiffModule<MetaBackend<B>>> Optimizer<M, MetaBackend<B>>
    for ConfiguredOptimizer<B, M>
{
    type Record = ();

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        match self {
            Self::Sgd(o) => o.step(lr, module, grads),
            Self::Adam(o) => o.step(lr, module, grads),
        }
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        match self {
            Self::Sgd(o) => o.step_multi(lr, module, grads),
            Self::Adam(o) => o.step_multi(lr, module, grads),
        }
    }

    fn to_record(&self) -> Self::Record {}

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }
}

/// Meta-learns the initial weights of any model `M` (named at the top of the autodiff
/// stack, `Model<SecondOrder<B>>`: see [`Learnable`]), and with `adapt.meta_sgd` one
/// inner step size per parameter entry (Meta-SGD, Li et al. 2017), with the optimiser
/// `O` (any `burn::optim` optimizer of the initial weights) at the learning rate of the
/// scheduler `S` (a number, or any `burn::optim::lr_scheduler`).
///
/// ```
/// use burn_ndarray::NdArray;
/// use burn::optim::AdamConfig;
/// use burn::prelude::*;
/// use maml_core::nn::{Linear, LinearConfig};
/// use maml_core::{AdaptConfig, Loss, MetaBatch, MetaModel, ModelLearner, SecondOrder};
///
/// #[derive(Module, Debug)]
/// struct Net<B: Backend> {
///     layer: Linear<B>,
/// }
///
/// impl<B: Backend> MetaModel<B> for Net<B> {
///     fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
///         self.layer.forward(x)
///     }
/// }
///
/// let device = Default::default();
/// let net = Net { layer: LinearConfig::new(2, 1).init::<NdArray>(&device) };
/// let adapt = AdaptConfig::new(0.1).with_loss(Loss::Mse); // the loss, named once
/// let mut learner = ModelLearner::<NdArray, Net<SecondOrder<NdArray>>, _, _>::with_optimizer(
///     net, adapt, AdamConfig::new().init(), 1e-2,
/// )
/// .unwrap();
/// let x = Tensor::<NdArray, 3>::ones([4, 5, 2], &device); // [tasks, n, in]
/// let y = Tensor::<NdArray, 3>::zeros([4, 5, 1], &device); // [tasks, n, out]
/// let batch = MetaBatch::from_tensors(x.clone(), y.clone(), x, y);
/// let adapted = learner.adapt(&batch.support);             // fast weights per task
/// assert_eq!(adapted.forward(batch.query.x.clone()).dims(), [4, 5, 1]);
/// let before: f64 = learner.meta_loss(&batch).loss.into_scalar().elem();
/// learner.step(&batch);                                    // meta-gradient + Adam step
/// let after: f64 = learner.meta_loss(&batch).loss.into_scalar().elem();
/// assert!(after < before);
/// ```
pub struct ModelLearner<
    B: Backend,
    M: Learnable<B>,
    O = ConfiguredOptimizer<B, <M as Learnable<B>>::Meta>,
    S = LearningRate,
> where
    O: Optimizer<M::Meta, MetaBackend<B>>,
    S: LrScheduler,
{
    model: M::Meta,
    step_sizes: Option<M::Meta>,
    step_table: Option<Param<Tensor<MetaBackend<B>, 2>>>,
    optim: O,
    size_optim: O,
    scheduler: S,
    adapt: AdaptConfig,
    path: GradientPath,
}

impl<B: Backend, M: Learnable<B>> ModelLearner<B, M> {
    /// A learner starting from the initial weights `model` (on `B`; lifted to the meta
    /// backend with its parameter ids), after checking `config`, with the optimiser and
    /// constant learning rate it names. Meta-SGD's step sizes start at
    /// `config.adapt.inner_lr`.
    pub fn new(model: M::Plain, config: MetaConfig) -> Result<Self> {
        config.validate()?;
        let optimizer = ConfiguredOptimizer::new(config.meta_optimizer);
        Self::with_optimizer(model, config.adapt, optimizer, config.meta_lr)
    }
}

impl<B, M, O, S> ModelLearner<B, M, O, S>
where
    B: Backend,
    M: Learnable<B>,
    O: Optimizer<M::Meta, MetaBackend<B>>,
    S: LrScheduler,
{
    /// A learner starting from the initial weights `model` (on `B`), adapting as `adapt`
    /// says (checked here), updated by `optimizer` (any `burn::optim` optimizer, e.g.
    /// `AdamConfig::new().with_grad_clipping(..).init()`) at the learning rate of
    /// `scheduler` (a number or a Burn scheduler, stepped once per meta step). Meta-SGD's
    /// step sizes get a copy of the optimiser of their own.
    pub fn with_optimizer(
        model: M::Plain,
        adapt: AdaptConfig,
        optimizer: O,
        scheduler: S,
    ) -> Result<Self> {
        adapt.validate()?;
        // Stored untracked: every meta-gradient takes fresh leaves of its own, and a
        // stored leaf would be re-registered in Burn's autodiff graph at every optimiser
        // step, which only a backward pass frees (the MLP's path runs none).
        let model =
            <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(model).map(&mut Untracked);
        let step_sizes = adapt
            .meta_sgd
            .then(|| model.clone().map(&mut Fill(adapt.inner_lr)));
        let params = param_count::<MetaBackend<B>, M::Meta>(&model);
        if let Some(&bad) = adapt
            .inner_params
            .iter()
            .flatten()
            .find(|&&index| index >= params)
        {
            return Err(MamlError::InvalidHyperparameter {
                name: "inner_params",
                value: bad.to_string(),
                reason: "is not the index of one of the model's parameter tensors",
            });
        }
        let step_table = adapt.per_step_lr.then(|| {
            let device = model.devices().into_iter().next();
            let shape = [adapt.inner_steps, params];
            let table = match device {
                Some(device) => Tensor::<B, 2>::full(shape, adapt.inner_lr, &device),
                None => Tensor::<B, 2>::full(shape, adapt.inner_lr, &Default::default()),
            };
            // Untracked, as the weights: `Param::from_tensor` would mark it as a leaf that
            // requires gradients, and every graph built on it would stay registered.
            Param::initialized(ParamId::new(), Tensor::from_inner(table))
        });
        Ok(Self {
            size_optim: optimizer.clone(),
            optim: optimizer,
            scheduler,
            model,
            step_sizes,
            step_table,
            adapt,
            path: GradientPath::Auto,
        })
    }

    /// Replaces Meta-SGD's step sizes (e.g. from a checkpoint or a problem file).
    pub fn with_step_sizes(mut self, sizes: M::Plain) -> Self {
        self.step_sizes = Some(M::Meta::from_inner(sizes).map(&mut Untracked));
        self
    }

    /// Replaces MAML++'s per-step step sizes, `[K, P]` (e.g. from a checkpoint or a
    /// problem file); the learner must be configured with `per_step_lr`.
    pub fn with_step_table(mut self, table: Tensor<B, 2>) -> Self {
        if let Some(old) = self.step_table.take() {
            self.step_table = Some(Param::initialized(old.id, Tensor::from_inner(table)));
        }
        self
    }

    /// MAML++'s per-step step sizes `[K, P]`, if learned.
    pub fn step_table(&self) -> Option<&Param<Tensor<MetaBackend<B>, 2>>> {
        self.step_table.as_ref()
    }

    /// The learned step sizes, as the algorithm takes them.
    pub fn learned_sizes(&self) -> StepSizes<'_, B, M> {
        match (&self.step_sizes, &self.step_table) {
            (Some(sizes), _) => StepSizes::PerEntry(sizes),
            (_, Some(table)) => StepSizes::PerStep(table),
            _ => StepSizes::Fixed,
        }
    }

    /// The learner with the meta learning rate of `scheduler` instead.
    pub fn with_scheduler<S2: LrScheduler>(self, scheduler: S2) -> ModelLearner<B, M, O, S2> {
        ModelLearner {
            model: self.model,
            step_sizes: self.step_sizes,
            step_table: self.step_table,
            optim: self.optim,
            size_optim: self.size_optim,
            scheduler,
            adapt: self.adapt,
            path: self.path,
        }
    }

    /// Changes the inner loop during training (MAML++'s schedules,
    /// [`crate::train::schedule::Schedule`]): the order, the multi-step loss weights, the
    /// inner optimizer. The learned step sizes and the number of inner steps they are
    /// shaped by stay.
    pub fn set_adapt(&mut self, adapt: AdaptConfig) -> Result<()> {
        adapt.validate()?;
        let fixed = [
            ("meta_sgd", adapt.meta_sgd != self.adapt.meta_sgd),
            ("per_step_lr", adapt.per_step_lr != self.adapt.per_step_lr),
            (
                "inner_steps",
                adapt.per_step_lr && adapt.inner_steps != self.adapt.inner_steps,
            ),
        ];
        if let Some((name, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(MamlError::InvalidHyperparameter {
                name,
                value: "changed".into(),
                reason: "is fixed by the learned step sizes once a learner is built",
            });
        }
        self.adapt = adapt;
        Ok(())
    }

    /// Takes meta-gradients by `path` (default [`GradientPath::Auto`]).
    pub fn with_gradient_path(mut self, path: GradientPath) -> Self {
        self.path = path;
        self
    }

    /// How the learner adapts to a task.
    pub fn adapt_config(&self) -> &AdaptConfig {
        &self.adapt
    }

    /// The current initial weights, on the meta backend.
    pub fn model(&self) -> &M::Meta {
        &self.model
    }

    /// Meta-SGD's step sizes, if learned.
    pub fn step_sizes(&self) -> Option<&M::Meta> {
        self.step_sizes.as_ref()
    }

    /// The optimiser (its state: `Optimizer::to_record`).
    pub fn optimizer(&self) -> &O {
        &self.optim
    }

    /// The optimisers of the weights and of the step sizes, and the scheduler (for
    /// checkpoints).
    pub(crate) fn states(&self) -> (&O, &O, &S) {
        (&self.optim, &self.size_optim, &self.scheduler)
    }

    /// The learner with the weights, step sizes and optimiser and scheduler states of a
    /// checkpoint.
    pub(crate) fn restore(
        mut self,
        model: M::Plain,
        step_sizes: Option<M::Plain>,
        optim: O::Record,
        size_optim: O::Record,
        scheduler: S::Record<B>,
    ) -> Self {
        self.model = M::Meta::from_inner(model).map(&mut Untracked);
        if let Some(sizes) = step_sizes {
            self.step_sizes = Some(M::Meta::from_inner(sizes).map(&mut Untracked));
        }
        self.optim = self.optim.load_record(optim);
        self.size_optim = self.size_optim.load_record(size_optim);
        self.scheduler = self.scheduler.load_record::<B>(scheduler);
        self
    }

    /// Adapts the initial weights to each task of `support` (`x [tasks, n, in]`): the
    /// inner loop's steps, giving each task's fast weights on `B`, for predictions on that
    /// task ([`Fast::forward`]). The values are those the meta-gradient adapts through,
    /// taken without the second-order graph.
    pub fn adapt(&self, support: &Sets<B>) -> Fast<M::Plain> {
        let first = self.adapt.clone().with_order(Order::First);
        adapt_model::<B, M>(&self.model, self.learned_sizes(), support, &first).valid()
    }

    /// The meta-loss of `batch` (the mean query loss of the fast weights adapted on the
    /// support sets), tracked back to the initial weights through the inner loop by
    /// nested autodiff, first or second order as configured: [`MetaLoss::backward`] gives
    /// the meta-gradient that [`Self::apply`] applies. [`Self::step`] does both, by the
    /// fastest road the model and configuration allow.
    pub fn meta_loss(&self, batch: &MetaBatch<B>) -> MetaLoss<B, M> {
        let batch = batch.with_loss(self.adapt.loss);
        MetaLoss::track(&self.model, self.learned_sizes(), &batch, &self.adapt)
    }

    /// The meta-gradient at the current weights, with the fast weights, without an
    /// update.
    pub fn meta_gradient(&self, batch: &MetaBatch<B>) -> ModelMetaGradient<B, M> {
        self.gradient(batch, true)
    }

    fn gradient(&self, batch: &MetaBatch<B>, keep_fast: bool) -> ModelMetaGradient<B, M> {
        meta_gradient_keeping::<B, M>(
            self.path,
            &self.model,
            self.learned_sizes(),
            batch,
            &self.adapt,
            keep_fast,
        )
    }

    /// One meta step: the meta-gradient on `batch`, then the meta-update of the initial
    /// weights (and step sizes). Returns the meta-gradient before the update, without
    /// the fast weights ([`Self::meta_gradient`] keeps them).
    pub fn step(&mut self, batch: &MetaBatch<B>) -> ModelMetaGradient<B, M> {
        let mut gradient = self.gradient(batch, false);
        self.apply(&mut gradient);
        gradient
    }

    /// Applies a meta-gradient (its gradients are taken out of it).
    pub fn apply(&mut self, gradient: &mut ModelMetaGradient<B, M>) {
        let grads = std::mem::take(&mut gradient.grads);
        self.update(grads, gradient.step_size_grads.take());
    }

    /// The meta-optimiser's step on the initial weights (and the step sizes), at the
    /// scheduler's next learning rate.
    fn update(&mut self, grads: GradientsParams, size_grads: Option<GradientsParams>) {
        let lr = self.scheduler.step();
        self.model = self.optim.step(lr, self.model.clone(), grads);
        if let Some(mut grads) = size_grads {
            if let Some(sizes) = self.step_sizes.take() {
                self.step_sizes = Some(self.size_optim.step(lr, sizes, grads));
            } else if let Some(table) = self.step_table.take() {
                // Plain gradient descent at the meta learning rate.
                let value = table.val().inner();
                let value = match grads.remove::<B, 2>(table.id) {
                    Some(g) => value - g.mul_scalar(lr),
                    None => value,
                };
                self.step_table = Some(Param::initialized(table.id, Tensor::from_inner(value)));
            }
        }
    }
}
