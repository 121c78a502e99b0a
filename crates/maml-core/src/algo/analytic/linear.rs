//! The linear model's road: an [`Mlp`](crate::model::mlp::Mlp) of one layer with a squared
//! loss (`sse` or `mse`) and one inner step size for every weight.
//!
//! With `x̃ = [x | 1]` (the ones column zero on padded rows) and `Θ^T = [W^T; b]`,
//! `[in + 1, out]`, each task's support loss is quadratic in its weights: its gradient is
//! `H Θ^T - c` with `H = 2 s x̃^T x̃` and `c = 2 s x̃^T y` fixed by the support set (`s`
//! the task's loss factor). An inner step is then affine, `Θ_{i+1}^T = A Θ_i^T + α c`
//! with `A = I - α H` (symmetric, per task), so the reverse sweep is `v_i = A v_{i+1}`
//! from `v_K = ∇ℓ_q(Θ_K) / tasks`: nothing of the inner loop is kept, and every step is
//! one `[in + 1, in + 1]` product per task. First order is `Σ_t v_K`, second order
//! `Σ_t A^K v_K`.

use burn::prelude::*;

use super::matrix::{one_per_task, outer, plus, product};
use super::{Layer, MlpMetaGradient};
use crate::config::{AdaptConfig, Order};
use crate::data::batch::{MetaBatch, Sets};

/// `x̃ = [x | 1]` of a set, `[tasks, n, in + 1]`; padded rows stay zero.
fn with_ones<B: Backend>(set: &Sets<B>) -> Tensor<B, 3> {
    let [tasks, n, _] = set.x.dims();
    let ones = match &set.mask {
        Some(mask) => mask.clone(),
        None => Tensor::ones([tasks, n, 1], &set.x.device()),
    };
    Tensor::cat(vec![set.x.clone(), ones], 2)
}

/// `t [tasks, in + 1, out]` split into a layer's `W^T [tasks, in, out]` and `b [tasks, 1,
/// out]`.
fn split<B: Backend>(t: Tensor<B, 3>) -> Layer<B> {
    let [tasks, c, out] = t.dims();
    (
        t.clone().slice([0..tasks, 0..c - 1, 0..out]),
        t.slice([0..tasks, c - 1..c, 0..out]),
    )
}

/// The meta-gradient of the one layer `(W^T [1, in, out], b [1, 1, out])` on `batch`, a
/// shard of a meta-batch of `all_tasks`: its share of the mean over all tasks.
pub(super) fn meta_gradient<B: Backend>(
    (weight, bias): Layer<B>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    all_tasks: usize,
    keep_fast: bool,
) -> MlpMetaGradient<B> {
    let tasks = batch.tasks();
    let theta_t = Tensor::cat(vec![weight, bias], 1);
    let [_, c, out] = theta_t.dims();
    let (support, query) = (&batch.support, &batch.query);
    let (alpha, steps) = (config.inner_lr, config.inner_steps);
    // `A` and `α c` of each task, when there is an inner step.
    let affine = (steps > 0).then(|| {
        let x = with_ones(support);
        // `2 s x̃`, masked: the loss's derivative in the predictions is `2 s (pred - y)`.
        let slope = support.weigh(x.clone()).mul_scalar(2.0);
        let h = x.swap_dims(1, 2).matmul(slope.clone());
        let eye: Tensor<B, 3> = Tensor::<B, 2>::eye(c, &theta_t.device()).reshape([1, c, c]);
        let a = plus(&eye, h.mul_scalar(-alpha));
        let shift = support
            .y
            .as_ref()
            .map(|y| slope.swap_dims(1, 2).matmul(y.clone()).mul_scalar(alpha));
        (a, shift)
    });
    let mut theta = theta_t;
    if let Some((a, shift)) = &affine {
        theta = one_per_task(theta, tasks);
        for _ in 0..steps {
            theta = a.clone().matmul(theta);
            if let Some(shift) = shift {
                theta = theta + shift.clone();
            }
        }
    }
    // The query loss at Θ_K and its gradient, scaled by 1 / tasks (the mean).
    let x = with_ones(query);
    let pred = product(x.clone(), &theta, false);
    let query_losses = query.task_losses(pred.clone());
    let delta = query.loss_gradient(pred).div_scalar(all_tasks as f64);
    let grad = match &affine {
        Some((a, _)) if config.order == Order::Second => {
            let mut v = outer(&x, &delta, true);
            for _ in 0..steps {
                v = a.clone().matmul(v);
            }
            v.sum_dim(0)
        }
        _ => outer(&x, &delta, false),
    };
    MlpMetaGradient {
        query_losses,
        grads: vec![split(grad.reshape([1, c, out]))],
        step_size_grads: None,
        fast: keep_fast.then(|| vec![split(one_per_task(theta, tasks))]),
    }
}
