//! The MLP's inner loop and its reverse sweep (see the parent module's docs for the
//! recursion), run once over every inner step or, with a checkpoint interval `C`
//! ([`AdaptConfig::inner_checkpoint_every`]), segment by segment: the forward sweep then keeps
//! the fast weights only at steps `0, C, 2C, …`, and the reverse sweep runs each segment
//! again from its kept weights, last first, keeping its passes for that segment alone.

use burn::prelude::*;

use super::matrix::{Matrix, minus, one_per_task, task_sum};
use super::{
    Backward, Layer, MlpMetaGradient, Pass, Step, Weights, backward, forward, hessian_product,
    linear, sum_layers, times_step, times_step_matrix,
};
use crate::config::{AdaptConfig, Loss, Order};
use crate::data::batch::{MetaBatch, Sets};
use crate::model::mlp::Activation;

/// What `H(θ_i)` needs: `θ_i`, and its support pass and backward pass.
struct HessianAt<B: Backend> {
    theta: Vec<Weights<B>>,
    pass: Pass<B>,
    back: Backward<B>,
}

/// What the reverse sweep needs of one inner step `θ_i -> θ_{i+1}`.
struct Kept<B: Backend> {
    /// Second order: what the Hessian-vector product at `θ_i` needs.
    hessian: Option<HessianAt<B>>,
    /// Meta-SGD: the support gradient `g(θ_i)`, per task.
    grads: Option<Vec<Weights<B>>>,
}

/// What every inner step of one meta-gradient shares.
#[derive(Clone, Copy)]
struct Inner<'a, B: Backend> {
    activation: Activation,
    step: Step<'a, B>,
    support: &'a Sets<B>,
    second: bool,
    meta_sgd: bool,
}

impl<B: Backend> Inner<'_, B> {
    /// `steps` inner steps from `theta`; with `keep`, what the reverse sweep needs of
    /// each (second order or Meta-SGD; else nothing).
    fn run(
        &self,
        mut theta: Vec<Weights<B>>,
        steps: usize,
        keep: bool,
    ) -> (Vec<Weights<B>>, Vec<Kept<B>>) {
        let mut kept = Vec::with_capacity(if keep { steps } else { 0 });
        for _ in 0..steps {
            let pass = forward(&theta, self.activation, self.support.x.clone());
            let delta = self.support.loss_gradient(pass.out.clone());
            let (grads, back) = backward(&theta, &pass, delta, true);
            let next: Vec<Weights<B>> = theta
                .iter()
                .zip(&grads)
                .enumerate()
                .map(|(l, ((w, b), (g_w, g_b)))| {
                    (
                        w.minus(times_step_matrix(g_w.clone(), self.step, l)),
                        minus(b, times_step(g_b.clone(), self.step, l, true)),
                    )
                })
                .collect();
            let before = std::mem::replace(&mut theta, next);
            if keep {
                kept.push(Kept {
                    hessian: self.second.then_some(HessianAt {
                        theta: before,
                        pass,
                        back,
                    }),
                    grads: self.meta_sgd.then_some(grads),
                });
            }
        }
        (theta, kept)
    }

    /// The reverse sweep through `kept`, the steps `first..first + kept.len()`, from
    /// `v = dL/dθ` after them to `dL/dθ_first`, adding Meta-SGD's terms to `size_grads`.
    fn reverse(
        &self,
        kept: &[Kept<B>],
        first: usize,
        mut v: Vec<Weights<B>>,
        size_grads: &mut Option<Vec<Layer<B>>>,
    ) -> Vec<Weights<B>> {
        for (i, kept) in kept.iter().enumerate().rev() {
            if let Some(grads) = &kept.grads {
                // dθ_{i+1}/dα = -g(θ_i): accumulate -Σ_t g ⊙ v.
                let terms: Vec<Layer<B>> = grads
                    .iter()
                    .zip(&v)
                    .map(|((g_w, g_b), (v_w, v_b))| {
                        (
                            (g_w.clone().dense() * v_w.clone().dense()).sum_dim(0).neg(),
                            (g_b.clone() * v_b.clone()).sum_dim(0).neg(),
                        )
                    })
                    .collect();
                *size_grads = Some(match size_grads.take() {
                    None => terms,
                    Some(acc) => sum_layers(acc, terms),
                });
            }
            if let Some(at) = &kept.hessian {
                let u: Vec<Weights<B>> = v
                    .iter()
                    .enumerate()
                    .map(|(l, (v_w, v_b))| {
                        (
                            times_step_matrix(v_w.clone(), self.step, l),
                            times_step(v_b.clone(), self.step, l, true),
                        )
                    })
                    .collect();
                // The first step's product is only needed summed over tasks: `Σ_t v_0`.
                let last = first + i == 0;
                let h = hessian_product(&at.theta, &at.pass, &at.back, &u, self.support, !last);
                v = v
                    .into_iter()
                    .zip(h)
                    .map(|((v_w, v_b), (h_w, h_b))| {
                        if last {
                            (
                                Matrix::Dense(v_w.task_sum() - h_w.dense()),
                                task_sum(v_b) - h_b,
                            )
                        } else {
                            (v_w.minus(h_w), v_b - h_b)
                        }
                    })
                    .collect();
            }
        }
        v
    }
}

/// [`super::meta_gradient`] of the tasks of `batch`, a shard of a meta-batch of
/// `all_tasks`: its share of the mean over all tasks.
pub(super) fn shard_meta_gradient<B: Backend>(
    layers: Vec<Layer<B>>,
    activation: Activation,
    sizes: Option<&[Layer<B>]>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    all_tasks: usize,
    keep_fast: bool,
) -> MlpMetaGradient<B> {
    if sizes.is_none() && layers.len() == 1 && batch.support.loss() != Some(Loss::CrossEntropy) {
        let layer = layers.into_iter().next().expect("one layer");
        return linear::meta_gradient(layer, batch, config, all_tasks, keep_fast);
    }
    let tasks = batch.tasks();
    let steps = config.inner_steps;
    let inner = Inner {
        activation,
        step: match sizes {
            Some(sizes) => Step::PerParameter(sizes),
            None => Step::Scalar(config.inner_lr),
        },
        support: &batch.support,
        second: config.order == Order::Second,
        meta_sgd: sizes.is_some(),
    };
    // The inner loop: every step kept at once, or only the segments' first weights.
    let theta: Vec<Weights<B>> = layers
        .into_iter()
        .map(|(w, b)| (Matrix::Dense(w), b))
        .collect();
    // First order without Meta-SGD keeps nothing of the inner loop: nothing to replay.
    let every = match config.inner_checkpoint_every {
        Some(every) if inner.second || inner.meta_sgd => every.max(1),
        _ => steps,
    };
    let (fast, kept, starts) = if every >= steps {
        let (fast, kept) = inner.run(theta, steps, true);
        (fast, kept, Vec::new())
    } else {
        let mut starts = Vec::with_capacity(steps.div_ceil(every));
        let mut theta = theta;
        for first in (0..steps).step_by(every) {
            starts.push(theta.clone());
            theta = inner.run(theta, every.min(steps - first), false).0;
        }
        (theta, Vec::new(), starts)
    };
    // The query loss at θ_K and its gradient, scaled by 1 / tasks (the mean).
    let pass = forward(&fast, activation, batch.query.x.clone());
    let query_losses = batch.query.task_losses(pass.out.clone());
    let delta = batch
        .query
        .loss_gradient(pass.out.clone())
        .div_scalar(all_tasks as f64);
    // Per task while an inner step still needs `v` per task (its Hessian direction, or
    // Meta-SGD's `g ⊙ v`); otherwise summed over tasks at once.
    let per_task = steps > 0 && (inner.second || inner.meta_sgd);
    let (mut v, _) = backward(&fast, &pass, delta, per_task);
    // The reverse sweep through the inner steps, segment by segment when checkpointed.
    let mut size_grads: Option<Vec<Layer<B>>> = None;
    v = inner.reverse(&kept, 0, v, &mut size_grads);
    for (j, start) in starts.into_iter().enumerate().rev() {
        let first = j * every;
        let (_, kept) = inner.run(start, every.min(steps - first), true);
        v = inner.reverse(&kept, first, v, &mut size_grads);
    }
    let grads = v
        .into_iter()
        .map(|(w, b)| (w.task_sum(), task_sum(b)))
        .collect();
    let fast = keep_fast.then(|| {
        fast.into_iter()
            .map(|(w, b)| (one_per_task(w.dense(), tasks), one_per_task(b, tasks)))
            .collect()
    });
    MlpMetaGradient {
        query_losses,
        grads,
        step_size_grads: size_grads,
        fast,
    }
}
