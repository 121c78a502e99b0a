//! Reptile (Nichol, Achiam and Schulman 2018, "On First-Order Meta-Learning
//! Algorithms"): the meta-gradient is the mean over the tasks of `θ_0 − θ_K`, the way
//! back from each task's fast weights after `K` first-order inner steps, so that a meta
//! step `θ ← θ − ε · meta_grad` moves the initial weights towards them. No query gradient
//! is taken; the query loss at `θ_K` is reported as the meta-loss.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::adapt::{adapt_states, fast_query_losses};
use super::flat::{Flat, axpy, flatten, register, sum_tasks};
use super::gradient::{Fast, ModelMetaGradient};
use super::sizes::StepSizes;
use crate::config::{AdaptConfig, Order};
use crate::data::batch::MetaBatch;
use crate::model::{Learnable, MetaBackend};

/// Reptile's meta-gradient of `batch` from the initial weights `model` (first order,
/// `config.inner_steps` steps of the configured inner rule on each support set).
pub fn reptile_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
    let model = <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(model.valid());
    let first = config.clone().with_order(Order::First);
    let batch = batch.with_loss(config.loss);
    let tasks = batch.tasks();
    let noop = &mut |_: &M::Meta, _: &GradientsParams, _| {};
    let fast = adapt_states::<B, M>(
        &model,
        StepSizes::Fixed,
        &batch.support,
        &first,
        false,
        noop,
    )
    .pop()
    .expect("the inner loop returns its fast weights");
    let query = batch.query.lift::<MetaBackend<B>>();
    let losses = fast_query_losses::<B, M>(&fast, &query, config.inner_steps).inner();
    let start = flatten::<B, M>(&model);
    // Σ_t θ_K(t), flattened like the initial weights.
    let sum: Flat<B> = match &fast {
        Fast::Batched(m) => sum_tasks(flatten::<B, M>(m), tasks),
        Fast::PerTask(ms) => ms
            .iter()
            .map(flatten::<B, M>)
            .reduce(|acc, f| axpy(acc, 1.0, &f))
            .expect("a meta-batch has at least one task"),
    };
    // θ_0 − (1/T) Σ_t θ_K(t), with the task axis of a task-batched model kept at 1.
    let grad: Flat<B> = start
        .into_iter()
        .zip(sum)
        .map(|(theta, sum)| theta - sum.mul_scalar(1.0 / tasks as f64))
        .collect();
    ModelMetaGradient {
        meta_loss: losses.clone().mean(),
        query_losses: losses,
        grads: register::<B, M>(&model, grad),
        step_size_grads: None,
        fast: Some(fast.valid()),
    }
}
