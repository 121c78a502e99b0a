//! MAML's exact meta-gradient in bounded memory, for any model: gradient checkpointing of
//! the inner loop.
//!
//! Second-order MAML differentiates the query loss through every inner step, so nested
//! autodiff keeps every step's graph (and the hand-derived roads every step's passes):
//! memory grows linearly with the number of inner steps `K`. With a checkpoint interval
//! `C`, the forward sweep keeps the fast weights only at steps `0, C, 2C, …` (as flat
//! values, no graph), then the backward sweep replays one segment at a time, last first:
//! from the kept `θ_s` (fresh leaves) it runs the segment's `C` steps with their graph
//! (second order through the support gradients, as without checkpoints), and
//! differentiates `⟨θ_{s+C}, v⟩` with `v = dL/dθ_{s+C}` from the segment after it, which
//! gives `v = dL/dθ_s` (and Meta-SGD's step sizes their share). Memory: `K/C` kept fast
//! weights and one segment's graph, smallest near `C = √K`; time: about one more
//! first-order inner loop. The numbers are those of the unchecked path up to rounding.
//!
//! The hand-derived MLP road checkpoints the same way on its own passes
//! ([`crate::algo::analytic`]); the linear model's road keeps nothing of the inner loop.

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::config::{AdaptConfig, Order};
use crate::data::batch::{MetaBatch, Sets};
use crate::model::{FreshLeaves, Learnable, MetaBackend, MetaModel, RepeatTasks, SecondOrder};

use super::flat::{
    Flat, axpy, dot_tensor, flat_grads, flatten, flatten_tracked, load, register, sum_tasks,
};
use super::gradient::{Fast, ModelMetaGradient};
use super::inner::{Rule, Sizes, adapt_steps, collect};

/// One system's result: its tasks' query losses `[tasks]`, the meta-gradient of their
/// share of the mean with respect to the system's initial weights and step sizes
/// (flattened), and its fast weights `θ_K`.
struct System<B: Backend> {
    losses: Tensor<B, 1>,
    grad: Flat<B>,
    size_grad: Option<Flat<B>>,
    fast: Flat<B>,
}

/// The inputs every system shares.
struct Inputs<'a, B: Backend, M: Learnable<B>> {
    /// Meta-SGD's step sizes, detached (fresh leaves are made from them per segment).
    sizes: Option<&'a M::Meta>,
    all_tasks: usize,
    config: &'a AdaptConfig,
    every: usize,
}

/// One system (a task-batched model's whole meta-batch, or one task of any other model)
/// from the initial weights `template`.
fn solve_system<B: Backend, M: Learnable<B>>(
    template: &M::Meta,
    support: &Sets<MetaBackend<B>>,
    support2: Option<&Sets<SecondOrder<B>>>,
    query: &Sets<MetaBackend<B>>,
    inputs: &Inputs<'_, B, M>,
) -> System<B> {
    let config = inputs.config;
    let (steps, every) = (config.inner_steps, inputs.every);
    let detached_sizes = inputs.sizes.map(collect::<B, M>).unwrap_or_default();
    fn rule<'s, B: Backend, M: Learnable<B>>(
        template: &M::Meta,
        sizes: Option<&'s [TensorPrimitive<MetaBackend<B>>]>,
        config: &AdaptConfig,
    ) -> Rule<'s, B> {
        let sizes = sizes.map_or(Sizes::Scalar, Sizes::PerParameter);
        Rule::new::<M>(template, sizes, config)
    }
    let has_sizes = inputs.sizes.is_some();
    let noop = &mut |_: &M::Meta, _: &GradientsParams, _| {};
    // Forward: the values alone (a first-order step has the same value as a second-order
    // one), keeping θ at the start of every segment.
    let mut phi = flatten::<B, M>(template);
    let mut kept = Vec::with_capacity(steps.div_ceil(every));
    for first in (0..steps).step_by(every) {
        kept.push(phi.clone());
        let count = every.min(steps - first);
        let start = load::<B, M>(template, phi);
        let range = first..first + count;
        let mut states = adapt_steps::<B, M>(
            start,
            support,
            None,
            range,
            &rule::<B, M>(template, has_sizes.then_some(&detached_sizes[..]), config),
            noop,
        );
        let end = states.pop().expect("a segment ends in fast weights");
        phi = flatten::<B, M>(&end);
    }
    // The query loss at θ_K and its gradient.
    let leaves = load::<B, M>(template, phi.clone());
    let pred = <M::Meta as MetaModel<MetaBackend<B>>>::forward_at(&leaves, query.x.clone(), steps);
    let losses = query.task_losses(pred);
    // `mul_scalar`, not `div_scalar`: Burn 0.21's `div_scalar` backward rounds `1 / n`
    // to f32 (an error of 3e-8 for n = 3 even on f64 backends).
    let share = losses
        .clone()
        .sum()
        .mul_scalar(1.0 / inputs.all_tasks as f64);
    let grads = GradientsParams::from_grads(share.backward(), &leaves);
    let mut v = flat_grads(&leaves, &grads);
    // Backward: each segment again, with its graph, last first.
    let mut size_grad: Option<Flat<B>> = None;
    for (j, start) in kept.into_iter().enumerate().rev() {
        let count = every.min(steps - j * every);
        let start = load::<B, M>(template, start);
        let size_leaves = inputs.sizes.map(|s| s.clone().map(&mut FreshLeaves));
        let sizes = size_leaves
            .as_ref()
            .map(collect::<B, M>)
            .unwrap_or_default();
        let range = j * every..j * every + count;
        let end = adapt_steps::<B, M>(
            start.clone(),
            support,
            support2,
            range,
            &rule::<B, M>(template, has_sizes.then_some(&sizes[..]), config),
            noop,
        )
        .pop()
        .expect("a segment ends in fast weights");
        let v_meta: Flat<MetaBackend<B>> = v.into_iter().map(Tensor::from_inner).collect();
        let mut grads = dot_tensor(&flatten_tracked(&end), &v_meta).backward();
        v = flat_grads(&start, &GradientsParams::from_module(&mut grads, &start));
        if let Some(leaves) = &size_leaves {
            let g = flat_grads(leaves, &GradientsParams::from_module(&mut grads, leaves));
            size_grad = Some(match size_grad {
                Some(acc) => axpy(acc, 1.0, &g),
                None => g,
            });
        }
    }
    System {
        losses: losses.inner(),
        grad: v,
        size_grad,
        fast: phi,
    }
}

/// The meta-gradient of the mean query loss over a meta-batch with respect to the
/// initial weights `model` (and Meta-SGD's `step_sizes`), first or second order as
/// `config` says, keeping the fast weights only at every
/// `config.inner_checkpoint_every`-th inner step (see the module docs; `None`: one
/// segment of every step).
pub fn checkpointed_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
    let every = config.inner_checkpoint_every.unwrap_or(config.inner_steps);
    let batch = &batch.with_loss(config.loss);
    let tasks = batch.tasks();
    let support = batch.support.lift::<MetaBackend<B>>();
    let support2 = (config.order == Order::Second && config.inner_steps > 0)
        .then(|| support.lift::<SecondOrder<B>>());
    let query = batch.query.lift::<MetaBackend<B>>();
    let detach = |m: &M::Meta| <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(m.valid());
    let sizes = step_sizes.map(detach);
    let inputs = Inputs::<B, M> {
        sizes: sizes.as_ref(),
        all_tasks: tasks,
        config,
        every: every.max(1),
    };
    let model = detach(model);
    let (losses, grad, size_grad, fast) = if <M::Meta as MetaModel<MetaBackend<B>>>::TASK_BATCHED {
        let repeated = model.clone().map(&mut RepeatTasks(tasks));
        let system = solve_system::<B, M>(&repeated, &support, support2.as_ref(), &query, &inputs);
        // Each initial parameter `[1, ...]` feeds every task's copy: sum over the tasks.
        let grad = sum_tasks(system.grad, tasks);
        let fast = Fast::Batched(load::<B, M>(&repeated, system.fast).valid());
        (system.losses, grad, system.size_grad, fast)
    } else {
        let mut losses = Vec::with_capacity(tasks);
        let mut grad: Option<Flat<B>> = None;
        let mut size_grad: Option<Flat<B>> = None;
        let mut fast = Vec::with_capacity(tasks);
        for t in 0..tasks {
            let s2 = support2.as_ref().map(|s| s.task(t));
            let system = solve_system::<B, M>(
                &model,
                &support.task(t),
                s2.as_ref(),
                &query.task(t),
                &inputs,
            );
            losses.push(system.losses);
            grad = Some(match grad {
                Some(acc) => axpy(acc, 1.0, &system.grad),
                None => system.grad,
            });
            size_grad = match (size_grad, system.size_grad) {
                (Some(acc), Some(g)) => Some(axpy(acc, 1.0, &g)),
                (acc, g) => acc.or(g),
            };
            fast.push(load::<B, M>(&model, system.fast).valid());
        }
        let grad = grad.expect("a meta-batch has at least one task");
        (Tensor::cat(losses, 0), grad, size_grad, Fast::PerTask(fast))
    };
    // With no inner step the step sizes do not feed the loss: no gradients, as autodiff.
    let step_size_grads = sizes.as_ref().map(|s| match size_grad {
        Some(g) => register::<B, M>(s, g),
        None => GradientsParams::new(),
    });
    ModelMetaGradient {
        meta_loss: losses.clone().mean(),
        query_losses: losses,
        grads: register::<B, M>(&model, grad),
        step_size_grads,
        fast: Some(fast),
    }
}
