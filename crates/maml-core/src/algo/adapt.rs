//! The inner loop over a meta-batch, for any model: every task's fast weights
//! ([`adapt_model`], and every step's for a multi-step loss), their query losses and
//! accuracies, and the adaptation curve. The meta-gradients
//! ([`crate::algo::learn`], [`crate::algo::reptile`]) and the meta-objective
//! ([`crate::algo::meta_loss`]) are built on it.

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::gradient::Fast;
use super::inner::{Observer, Rule, Sizes, adapt_steps, collect};
use super::sizes::StepSizes;
use crate::config::{AdaptConfig, Order};
use crate::data::batch::{MetaBatch, Sets};
use crate::model::{Learnable, MetaBackend, MetaModel, RepeatTasks, SecondOrder};

fn forward_meta<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    x: Tensor<MetaBackend<B>, 3>,
    step: usize,
) -> Tensor<MetaBackend<B>, 3> {
    <M::Meta as MetaModel<MetaBackend<B>>>::forward_at(model, x, step)
}

pub(crate) fn batched<B: Backend, M: Learnable<B>>() -> bool {
    <M::Meta as MetaModel<MetaBackend<B>>>::TASK_BATCHED
}

/// The inner loop for any model, on the meta backend: `config.inner_steps` steps on each
/// task's support set from the initial weights `model` by the configured rule, with
/// learned step sizes `step_sizes` (`None`, Meta-SGD's module of the model's structure,
/// or [`StepSizes::PerStep`]). The fast weights are tracked as functions of `model` (and
/// of the step sizes).
pub fn adapt_model<'a, B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    support: &Sets<B>,
    config: &AdaptConfig,
) -> Fast<M::Meta>
where
    M::Meta: 'a,
{
    adapt_observed::<B, M>(model, step_sizes, support, config, &mut |_, _, _| {})
}

/// [`adapt_model`], showing every inner step to `observe`: the fast weights the step
/// started from, the support gradients by parameter id, and where they live (the inner
/// loop's trace and figures read it).
pub fn adapt_observed<'a, B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    support: &Sets<B>,
    config: &AdaptConfig,
    observe: &mut Observer<'_, B, M>,
) -> Fast<M::Meta>
where
    M::Meta: 'a,
{
    adapt_states::<B, M>(model, step_sizes.into(), support, config, false, observe)
        .pop()
        .expect("the inner loop returns its last fast weights")
}

/// The inner loop's fast weights after every step, `θ_0 ..= θ_K` (with `all`), or after
/// the last alone.
pub(crate) fn adapt_states<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: StepSizes<'_, B, M>,
    support: &Sets<B>,
    config: &AdaptConfig,
    all: bool,
    observe: &mut Observer<'_, B, M>,
) -> Vec<Fast<M::Meta>> {
    let entries = match step_sizes {
        StepSizes::PerEntry(s) => collect::<B, M>(s),
        _ => Vec::new(),
    };
    let table = step_sizes.per_step().map(|t| t.val());
    let sizes = match (step_sizes, &table) {
        (StepSizes::PerEntry(_), _) => Sizes::PerParameter(&entries),
        (_, Some(table)) => Sizes::PerStep(table),
        _ => Sizes::Scalar,
    };
    let rule = Rule::new::<M>(model, sizes, config);
    let support1 = support.with_loss(config.loss).lift::<MetaBackend<B>>();
    let support2 = (config.order == Order::Second && config.inner_steps > 0)
        .then(|| support1.lift::<SecondOrder<B>>());
    let tasks = support.tasks();
    let kept = if all { config.inner_steps + 1 } else { 1 };
    let mut run = |start: M::Meta, s1: &Sets<MetaBackend<B>>, s2: Option<&Sets<SecondOrder<B>>>| {
        let mut states = adapt_steps::<B, M>(start, s1, s2, 0..config.inner_steps, &rule, observe);
        states.split_off(states.len() - kept)
    };
    if batched::<B, M>() {
        let start = model.clone().map(&mut RepeatTasks(tasks));
        run(start, &support1, support2.as_ref())
            .into_iter()
            .map(Fast::Batched)
            .collect()
    } else {
        let mut by_step: Vec<Vec<M::Meta>> = (0..kept).map(|_| Vec::new()).collect();
        for t in 0..tasks {
            let s1 = support1.task(t);
            let s2 = support2.as_ref().map(|s| s.task(t));
            for (k, state) in run(model.clone(), &s1, s2.as_ref()).into_iter().enumerate() {
                by_step[k].push(state);
            }
        }
        by_step.into_iter().map(Fast::PerTask).collect()
    }
}

/// Each task's query loss of fast weights after `step` inner steps, `[tasks]`.
pub fn fast_query_losses<B: Backend, M: Learnable<B>>(
    fast: &Fast<M::Meta>,
    query: &Sets<MetaBackend<B>>,
    step: usize,
) -> Tensor<MetaBackend<B>, 1> {
    match fast {
        Fast::Batched(model) => {
            query.task_losses(forward_meta::<B, M>(model, query.x.clone(), step))
        }
        Fast::PerTask(models) => Tensor::cat(
            models
                .iter()
                .enumerate()
                .map(|(t, model)| {
                    let q = query.task(t);
                    q.task_losses(forward_meta::<B, M>(model, q.x.clone(), step))
                })
                .collect(),
            0,
        ),
    }
}

/// Each task's query accuracy ([`Sets::task_accuracies`]) of fast weights on `B` after
/// `step` inner steps (the step that per-step model parts, such as MAML++'s per-step
/// batch norm, are read at: [`MetaModel::forward_at`]), `[tasks]`.
pub fn query_accuracies<B: Backend, P: MetaModel<B>>(
    fast: &Fast<P>,
    query: &Sets<B>,
    step: usize,
) -> Tensor<B, 1> {
    match fast {
        Fast::Batched(model) => query.task_accuracies(model.forward_at(query.x.clone(), step)),
        Fast::PerTask(models) => Tensor::cat(
            models
                .iter()
                .enumerate()
                .map(|(t, model)| {
                    let q = query.task(t);
                    q.task_accuracies(model.forward_at(q.x.clone(), step))
                })
                .collect(),
            0,
        ),
    }
}

/// The mean query loss after `k` first-order inner steps from `model` (with learned
/// `step_sizes`), for `k = 0..=config.inner_steps`: the adaptation curve.
pub fn model_adaptation_curve<'a, B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> Vec<f64>
where
    M::Meta: 'a,
{
    let start = <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(model.valid());
    let first = config.clone().with_order(Order::First);
    let batch = batch.with_loss(config.loss);
    let query = batch.query.lift::<MetaBackend<B>>();
    let noop = &mut |_: &M::Meta, _: &GradientsParams, _| {};
    let states = adapt_states::<B, M>(
        &start,
        step_sizes.into(),
        &batch.support,
        &first,
        true,
        noop,
    );
    states
        .iter()
        .enumerate()
        .map(|(k, fast)| {
            let losses = fast_query_losses::<B, M>(fast, &query, k).inner();
            crate::model::to_f64(losses.mean())[0]
        })
        .collect()
}
