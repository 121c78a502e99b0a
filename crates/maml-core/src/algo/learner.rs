//! The meta-learner: [`ModelLearner`] takes meta-gradients of any model
//! ([`crate::algo::learn`]) and updates the initial weights (and Meta-SGD's step sizes)
//! with Burn's SGD or Adam, on one machine or as one worker of a data-parallel step.

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::prelude::*;

use crate::algo::learn::{ModelMetaGradient, meta_gradient_keeping};
use crate::config::{GradientPath, MetaConfig, MetaOptimizer};
use crate::data::batch::MetaBatch;
use crate::error::Result;
use crate::model::{Fill, Learnable, MetaBackend, Untracked};

#[derive(Clone)]
enum Optim<B: Backend, M: AutodiffModule<MetaBackend<B>>> {
    Sgd(OptimizerAdaptor<Sgd<B>, M, MetaBackend<B>>),
    Adam(OptimizerAdaptor<Adam, M, MetaBackend<B>>),
}

impl<B: Backend, M: AutodiffModule<MetaBackend<B>>> Optim<B, M> {
    fn new(kind: MetaOptimizer) -> Self {
        match kind {
            MetaOptimizer::Sgd => Self::Sgd(SgdConfig::new().init()),
            MetaOptimizer::Adam => Self::Adam(AdamConfig::new().init()),
        }
    }

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Self::Sgd(o) => o.step(lr, module, grads),
            Self::Adam(o) => o.step(lr, module, grads),
        }
    }
}

/// Meta-learns the initial weights of any model `M` (named at the top of the autodiff
/// stack, `Model<SecondOrder<B>>`: see [`Learnable`]), and with `config.adapt.meta_sgd`
/// one inner step size per parameter entry (Meta-SGD, Li et al. 2017).
pub struct ModelLearner<B: Backend, M: Learnable<B>> {
    model: M::Meta,
    step_sizes: Option<M::Meta>,
    optim: Optim<B, M::Meta>,
    size_optim: Optim<B, M::Meta>,
    config: MetaConfig,
    path: GradientPath,
}

impl<B: Backend, M: Learnable<B>> ModelLearner<B, M> {
    /// A learner starting from the initial weights `model` (on `B`; lifted to the meta
    /// backend with its parameter ids), after checking `config`. Meta-SGD's step sizes
    /// start at `config.adapt.inner_lr`.
    pub fn new(model: M::Plain, config: MetaConfig) -> Result<Self> {
        config.validate()?;
        // Stored untracked: every meta-gradient takes fresh leaves of its own, and a
        // stored leaf would be re-registered in Burn's autodiff graph at every optimiser
        // step, which only a backward pass frees (the MLP's path runs none).
        let model =
            <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(model).map(&mut Untracked);
        let step_sizes = config
            .adapt
            .meta_sgd
            .then(|| model.clone().map(&mut Fill(config.adapt.inner_lr)));
        Ok(Self {
            optim: Optim::new(config.meta_optimizer),
            size_optim: Optim::new(config.meta_optimizer),
            model,
            step_sizes,
            config,
            path: GradientPath::Auto,
        })
    }

    /// Replaces Meta-SGD's step sizes (e.g. from a checkpoint or a problem file).
    pub fn with_step_sizes(mut self, sizes: M::Plain) -> Self {
        self.step_sizes = Some(M::Meta::from_inner(sizes).map(&mut Untracked));
        self
    }

    /// Takes meta-gradients by `path` (default [`GradientPath::Auto`]).
    pub fn with_gradient_path(mut self, path: GradientPath) -> Self {
        self.path = path;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    /// The current initial weights, on the meta backend.
    pub fn model(&self) -> &M::Meta {
        &self.model
    }

    /// Meta-SGD's step sizes, if learned.
    pub fn step_sizes(&self) -> Option<&M::Meta> {
        self.step_sizes.as_ref()
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
            self.step_sizes.as_ref(),
            batch,
            &self.config.adapt,
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

    /// The meta-optimiser's step on the initial weights (and the step sizes).
    fn update(&mut self, grads: GradientsParams, size_grads: Option<GradientsParams>) {
        let lr = self.config.meta_lr;
        self.model = self.optim.step(lr, self.model.clone(), grads);
        if let Some(grads) = size_grads
            && let Some(sizes) = self.step_sizes.take()
        {
            self.step_sizes = Some(self.size_optim.step(lr, sizes, grads));
        }
    }
}

/// Flattens gradients (by parameter id, tensors of `B`) in the visit order of `module`
/// into one `[n]` tensor, zeros where a parameter has none.
struct Flatten<'a, B: Backend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<B, 1>>,
    device: B::Device,
}

impl<B: Backend> burn::module::ModuleVisitor<MetaBackend<B>> for Flatten<'_, B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<Tensor<MetaBackend<B>, D>>,
    ) {
        let n = param.shape().num_elements();
        let part = match self.grads.get::<B, D>(param.id) {
            Some(g) => g.reshape([n]),
            None => Tensor::zeros([n], &self.device),
        };
        self.parts.push(part);
    }
}

/// The inverse of [`Flatten`]: slices a flat `[n]` tensor back into gradients by id.
struct Unflatten<B: Backend> {
    flat: Tensor<B, 1>,
    offset: usize,
    grads: GradientsParams,
}

impl<B: Backend> burn::module::ModuleVisitor<MetaBackend<B>> for Unflatten<B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<Tensor<MetaBackend<B>, D>>,
    ) {
        let shape = param.shape();
        let n = shape.num_elements();
        let part = self.flat.clone().slice(self.offset..self.offset + n);
        self.offset += n;
        self.grads.register::<B, D>(param.id, part.reshape(shape));
    }
}

impl<B: Backend, M: Learnable<B>> ModelLearner<B, M> {
    /// One data-parallel meta step on this worker's shard of a meta-batch: the shard's
    /// meta-gradient, scaled by `weight` (the shard's share of the tasks, `n_i / n`),
    /// is flattened into one `[params + 1]` tensor (the scaled meta-loss last) and summed
    /// over all workers by `all_reduce_sum`; every worker then applies the same update.
    /// The sum of the shares is the meta-gradient of the whole meta-batch (the mean
    /// over its tasks), up to the order of floating-point summation. Returns the whole
    /// meta-batch's meta-loss.
    pub fn step_shard<E>(
        &mut self,
        shard: &MetaBatch<B>,
        weight: f64,
        all_reduce_sum: impl FnOnce(Tensor<B, 1>) -> std::result::Result<Tensor<B, 1>, E>,
    ) -> std::result::Result<f64, E> {
        let gradient = self.gradient(shard, false);
        let device = gradient.meta_loss.device();
        let mut flat = Flatten {
            grads: &gradient.grads,
            parts: Vec::new(),
            device: device.clone(),
        };
        self.model.visit(&mut flat);
        let model_len: usize = flat.parts.iter().map(|p| p.dims()[0]).sum();
        let mut parts = flat.parts;
        if let (Some(sizes), Some(grads)) = (&self.step_sizes, &gradient.step_size_grads) {
            let mut flat = Flatten {
                grads,
                parts: Vec::new(),
                device: device.clone(),
            };
            sizes.visit(&mut flat);
            parts.extend(flat.parts);
        }
        parts.push(gradient.meta_loss);
        let total = all_reduce_sum(Tensor::cat(parts, 0).mul_scalar(weight))?;
        let n = total.dims()[0];
        let meta_loss = crate::model::to_f64(total.clone().slice(n - 1..n))[0];
        let mut model_grads = Unflatten {
            flat: total.clone().slice(0..model_len),
            offset: 0,
            grads: GradientsParams::new(),
        };
        self.model.visit(&mut model_grads);
        let size_grads = self.step_sizes.as_ref().map(|sizes| {
            let mut grads = Unflatten {
                flat: total.slice(model_len..n - 1),
                offset: 0,
                grads: GradientsParams::new(),
            };
            sizes.visit(&mut grads);
            grads.grads
        });
        self.update(model_grads.grads, size_grads);
        Ok(meta_loss)
    }
}
