//! The meta-objective of a meta-batch, tracked back to the initial weights (and learned
//! step sizes) through the inner loop: the query loss of the fast weights, or MAML++'s
//! multi-step loss, `Σ_k w_k L_query(θ_k)`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::adapt::{adapt_states, fast_query_losses};
use super::gradient::{Fast, ModelMetaGradient};
use super::sizes::StepSizes;
use crate::config::AdaptConfig;
use crate::data::batch::MetaBatch;
use crate::model::{FreshLeaves, Learnable, MetaBackend};

/// The meta-loss of a meta-batch ([`crate::ModelLearner::meta_loss`]), tracked back to
/// the initial weights (and the learned step sizes) through the inner loop.
pub struct MetaLoss<B: Backend, M: Learnable<B>> {
    /// The objective, `[1]`, on the meta backend: the mean over the tasks of each task's
    /// query loss of the fast weights (or multi-step loss), or any objective built from
    /// it ([`Self::map`]).
    pub loss: Tensor<MetaBackend<B>, 1>,
    query_losses: Tensor<MetaBackend<B>, 1>,
    leaves: M::Meta,
    size_leaves: Option<M::Meta>,
    table_leaf: Option<Param<Tensor<MetaBackend<B>, 2>>>,
    fast: Fast<M::Meta>,
}

impl<B: Backend, M: Learnable<B>> MetaLoss<B, M> {
    /// Adapts fresh leaves of `model` (and of the step sizes) on the support sets and
    /// scores the fast weights on the query sets (`batch` scored with `config.loss`): at
    /// `θ_K`, or at every `θ_k` weighted by `config.step_loss_weights`.
    pub(crate) fn track(
        model: &M::Meta,
        step_sizes: StepSizes<'_, B, M>,
        batch: &MetaBatch<B>,
        config: &AdaptConfig,
    ) -> Self {
        // Fresh leaves for every meta-gradient (a reused leaf may have been released by
        // an earlier backward pass's graph clean-up); they keep the parameters' ids.
        let leaves = model.clone().map(&mut FreshLeaves);
        let size_leaves = step_sizes
            .per_entry()
            .map(|s| s.clone().map(&mut FreshLeaves));
        let table_leaf = step_sizes.per_step().map(|t| {
            let (id, tensor, mapper) = t.clone().consume();
            Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
        });
        let sizes = match (&size_leaves, &table_leaf) {
            (Some(s), _) => StepSizes::PerEntry(s),
            (_, Some(t)) => StepSizes::PerStep(t),
            _ => StepSizes::Fixed,
        };
        let weights = config.step_loss_weights.as_ref();
        let noop = &mut |_: &M::Meta, _: &GradientsParams, _| {};
        let mut states = adapt_states::<B, M>(
            &leaves,
            sizes,
            &batch.support,
            config,
            weights.is_some(),
            noop,
        );
        let query = batch.query.lift::<MetaBackend<B>>();
        let steps = config.inner_steps;
        let fast = states
            .pop()
            .expect("the inner loop returns its fast weights");
        let last = fast_query_losses::<B, M>(&fast, &query, steps);
        let query_losses = match weights {
            None => last,
            Some(weights) => {
                let mut total = last.mul_scalar(weights[steps - 1]);
                for (k, state) in states.iter().enumerate().skip(1) {
                    let losses = fast_query_losses::<B, M>(state, &query, k);
                    total = total + losses.mul_scalar(weights[k - 1]);
                }
                total
            }
        };
        Self {
            loss: query_losses.clone().mean(),
            query_losses,
            leaves,
            size_leaves,
            table_leaf,
            fast,
        }
    }

    /// The objective replaced by `f(loss)`, for example the meta-loss plus a penalty.
    pub fn map(
        self,
        f: impl FnOnce(Tensor<MetaBackend<B>, 1>) -> Tensor<MetaBackend<B>, 1>,
    ) -> Self {
        Self {
            loss: f(self.loss),
            ..self
        }
    }

    /// Each task's query loss (multi-step loss), `[tasks]`, tracked.
    pub(crate) fn query_losses(&self) -> &Tensor<MetaBackend<B>, 1> {
        &self.query_losses
    }

    /// The objective's gradient with respect to the initial weights (and step sizes),
    /// for [`crate::ModelLearner::apply`]; its `meta_loss` is the mean over the tasks of
    /// the query loss (multi-step loss) before any [`Self::map`].
    pub fn backward(self) -> ModelMetaGradient<B, M> {
        self.backward_keeping(false)
    }

    /// [`Self::backward`], with the fast weights if `keep_fast`.
    pub(crate) fn backward_keeping(self, keep_fast: bool) -> ModelMetaGradient<B, M> {
        let mut grads = self.loss.backward();
        let model_grads = GradientsParams::from_module(&mut grads, &self.leaves);
        let mut step_size_grads = self
            .size_leaves
            .as_ref()
            .map(|s| GradientsParams::from_module(&mut grads, s));
        if let Some(table) = &self.table_leaf {
            let mut params = GradientsParams::new();
            if let Some(g) = table.val().grad_remove(&mut grads) {
                params.register::<B, 2>(table.id, g);
            }
            step_size_grads = Some(params);
        }
        ModelMetaGradient {
            meta_loss: self.query_losses.clone().mean().inner(),
            query_losses: self.query_losses.inner(),
            grads: model_grads,
            step_size_grads,
            fast: keep_fast.then(|| self.fast.valid()),
        }
    }
}

/// Adds the step sizes' gradients `more` into `acc` (`sizes`' ids).
pub(crate) fn add_size_grads<B: Backend, M: Learnable<B>>(
    acc: &mut GradientsParams,
    more: GradientsParams,
    sizes: StepSizes<'_, B, M>,
) {
    match sizes {
        StepSizes::Fixed => {}
        StepSizes::PerEntry(module) => add_grads::<B, M>(acc, more, module),
        StepSizes::PerStep(table) => {
            let mut more = more;
            let sum = match (acc.remove::<B, 2>(table.id), more.remove::<B, 2>(table.id)) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            if let Some(g) = sum {
                acc.register::<B, 2>(table.id, g);
            }
        }
    }
}

/// Adds `more` into `acc`, parameter by parameter (`module`'s ids); a parameter that
/// neither has a gradient for stays without one.
pub(crate) fn add_grads<B: Backend, M: Learnable<B>>(
    acc: &mut GradientsParams,
    more: GradientsParams,
    module: &M::Meta,
) {
    struct Add<'a, B> {
        acc: &'a mut GradientsParams,
        more: GradientsParams,
        _backend: std::marker::PhantomData<B>,
    }
    impl<B: Backend> ModuleVisitor<MetaBackend<B>> for Add<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<MetaBackend<B>, D>>) {
            let sum = match (
                self.acc.remove::<B, D>(param.id),
                self.more.remove::<B, D>(param.id),
            ) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            if let Some(g) = sum {
                self.acc.register::<B, D>(param.id, g);
            }
        }
    }
    module.visit(&mut Add::<B> {
        acc,
        more,
        _backend: std::marker::PhantomData,
    });
}
