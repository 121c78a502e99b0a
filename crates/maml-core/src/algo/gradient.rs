//! What the algorithm returns: fast weights and meta-gradients, shared by MAML
//! ([`crate::algo::learn`]) and implicit MAML ([`crate::algo::implicit`]).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::model::{Learnable, MetaModel};

/// Fast weights after the inner loop.
#[derive(Debug, Clone)]
pub enum Fast<M> {
    /// A task-batched model: one module whose parameters' leading axis is the task.
    Batched(M),
    /// Any other model: one module per task.
    PerTask(Vec<M>),
}

impl<M> Fast<M> {
    /// The same fast weights on the inner backend, untracked (for predictions).
    pub fn valid<A: AutodiffBackend>(&self) -> Fast<M::InnerModule>
    where
        M: AutodiffModule<A>,
    {
        match self {
            Fast::Batched(m) => Fast::Batched(m.valid()),
            Fast::PerTask(ms) => Fast::PerTask(ms.iter().map(AutodiffModule::valid).collect()),
        }
    }

    /// Each task's predictions by its own fast weights, `x [tasks, n, in] ->
    /// [tasks, n, out]` (task `t` of `x` goes through task `t`'s weights). Every row of
    /// `x` is predicted, padding included: for the scores of a padded set use
    /// [`crate::algo::learn::query_accuracies`] or [`crate::data::batch::Sets::task`].
    pub fn forward<B: Backend>(&self, x: Tensor<B, 3>) -> Tensor<B, 3>
    where
        M: MetaModel<B>,
    {
        match self {
            Fast::Batched(model) => model.forward(x),
            Fast::PerTask(models) => Tensor::cat(
                models
                    .iter()
                    .enumerate()
                    .map(|(t, model)| model.forward(x.clone().slice(t..t + 1)))
                    .collect(),
                0,
            ),
        }
    }
}

/// A meta-gradient of any model. Tensors are lazy: reading one syncs with the device.
#[derive(Debug)]
pub struct ModelMetaGradient<B: Backend, M: Learnable<B>> {
    /// Mean query loss over the tasks, `[1]`.
    pub meta_loss: Tensor<B, 1>,
    /// Each task's query loss, `[tasks]`.
    pub query_losses: Tensor<B, 1>,
    /// d meta-loss / d initial weights, by parameter id (tensors of `B`).
    pub grads: GradientsParams,
    /// d meta-loss / d step sizes (Meta-SGD), by the step sizes' parameter ids.
    pub step_size_grads: Option<GradientsParams>,
    /// Every task's fast weights, on `B`; `None` from a meta step
    /// ([`crate::algo::learner::ModelLearner::step`] and `step_shard`), whose updates do
    /// not read them (the built-in MLP's gradient path then never forms them, see
    /// [`crate::algo::analytic`]).
    pub fast: Option<Fast<M::Plain>>,
}
