//! Implicit MAML (iMAML, Rajeswaran et al. 2019) for any model: the meta-gradient at the
//! optimum of a proximal inner problem, by conjugate gradient on Hessian-vector products.
//!
//! Each task's fast weights approximately solve
//! `φ* = argmin_φ L_support(φ) + λ/2 ‖φ − θ‖²` by `inner_steps` gradient steps of size
//! `inner_lr` from `θ`. At the optimum `dφ*/dθ = (I + H/λ)⁻¹` with `H` the support loss's
//! Hessian at `φ*`, so the meta-gradient of the query loss is
//! `(I + H/λ)⁻¹ ∇_φ L_query(φ*)`, solved by `cg_steps` iterations of conjugate gradient.
//! Nothing of the inner steps is kept: memory does not grow with `inner_steps`. Each
//! Hessian-vector product differentiates the support gradient once more, on
//! [`SecondOrder<B>`] (the only place here that nests the decorator, as in
//! [`crate::algo::learn`]).
//!
//! Task-batched models ([`MetaModel::TASK_BATCHED`]) solve one system for the whole
//! meta-batch (its Hessian is block-diagonal by task); other models one per task.

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::config::{AdaptConfig, Imaml};
use crate::data::batch::{MetaBatch, Sets};
use crate::model::{Learnable, MetaBackend, MetaModel, RepeatTasks, SecondOrder, lift_second};

use super::flat::{Flat, axpy, dot, dot_tensor, flat_grads, flatten, load, register, sum_tasks};
use super::gradient::{Fast, ModelMetaGradient};

/// The gradient of the support loss at `phi`, flattened.
fn support_grad<B: Backend, M: Learnable<B>>(
    template: &M::Meta,
    phi: &Flat<B>,
    support: &Sets<MetaBackend<B>>,
) -> Flat<B> {
    let leaves = load::<B, M>(template, phi.clone());
    let pred = <M::Meta as MetaModel<MetaBackend<B>>>::forward(&leaves, support.x.clone());
    let grads = GradientsParams::from_grads(support.total_loss(pred).backward(), &leaves);
    flat_grads(&leaves, &grads)
}

/// `H v`: the support loss's Hessian at `phi` times `v`, by differentiating
/// `⟨∇L_support(φ), v⟩` once more (the support gradient taken on [`SecondOrder<B>`] is
/// tracked on the meta backend).
fn hessian_vector<B: Backend, M: Learnable<B>>(
    template: &M::Meta,
    phi: &Flat<B>,
    v: &Flat<B>,
    support2: &Sets<SecondOrder<B>>,
) -> Flat<B> {
    let leaves = load::<B, M>(template, phi.clone());
    let lifted = lift_second::<B, M>(leaves.clone());
    let pred = <M as MetaModel<SecondOrder<B>>>::forward(&lifted, support2.x.clone());
    let grads = GradientsParams::from_grads(support2.total_loss(pred).backward(), &lifted);
    let v: Flat<MetaBackend<B>> = v.iter().cloned().map(Tensor::from_inner).collect();
    let product = dot_tensor(&flat_grads(&lifted, &grads), &v);
    let grads = GradientsParams::from_grads(product.backward(), &leaves);
    flat_grads(&leaves, &grads)
}

/// Solves `(I + H/λ) x = g` by at most `steps` iterations of conjugate gradient from
/// `x = 0`, stopping early once the residual is 1e-12 of `g` (in norm): past that, the
/// directions are rounding noise and a further step would add it to `x`.
fn conjugate_gradient<B: Backend>(
    g: &Flat<B>,
    lambda: f64,
    steps: usize,
    mut hessian: impl FnMut(&Flat<B>) -> Flat<B>,
) -> Flat<B> {
    let mut x: Flat<B> = g.iter().map(Tensor::zeros_like).collect();
    let mut r = g.clone();
    let mut p = g.clone();
    let mut rs = dot(&r, &r);
    let stop = rs * 1e-24;
    for _ in 0..steps {
        if rs <= stop || rs == 0.0 {
            break;
        }
        let ap = axpy(p.clone(), 1.0 / lambda, &hessian(&p));
        let curvature = dot(&p, &ap);
        // `I + H/λ` is positive definite where the inner problem is strongly convex; a
        // direction without positive curvature ends the solve with what it has.
        if !(curvature.is_finite() && curvature > 0.0) {
            break;
        }
        let alpha = rs / curvature;
        x = axpy(x, alpha, &p);
        r = axpy(r, -alpha, &ap);
        let rs_next = dot(&r, &r);
        p = axpy(r.clone(), rs_next / rs, &p);
        rs = rs_next;
    }
    x
}

/// One system's fast weights `φ*` (flattened) from `theta`, the proximal inner loop.
fn inner_optimum<B: Backend, M: Learnable<B>>(
    template: &M::Meta,
    theta: &Flat<B>,
    support: &Sets<MetaBackend<B>>,
    config: &AdaptConfig,
    imaml: &Imaml,
) -> Flat<B> {
    let mut phi = theta.clone();
    for _ in 0..config.inner_steps {
        let g = support_grad::<B, M>(template, &phi, support);
        // φ ← φ − α (∇L(φ) + λ (φ − θ))
        phi = phi
            .iter()
            .zip(&g)
            .zip(theta)
            .map(|((phi, g), theta)| {
                let pull = (phi.clone() - theta.clone()).mul_scalar(imaml.lambda);
                phi.clone() - (g.clone() + pull).mul_scalar(config.inner_lr)
            })
            .collect();
    }
    phi
}

/// One system: the query losses `[tasks]` at `φ*`, the implicit meta-gradient of their
/// mean over `all_tasks` tasks (flattened, on the layout of `template`) and `φ*`.
fn solve_system<B: Backend, M: Learnable<B>>(
    template: &M::Meta,
    support: &Sets<MetaBackend<B>>,
    query: &Sets<MetaBackend<B>>,
    all_tasks: usize,
    config: &AdaptConfig,
    imaml: &Imaml,
) -> (Tensor<B, 1>, Flat<B>, Flat<B>) {
    let theta = flatten::<B, M>(template);
    let phi = inner_optimum::<B, M>(template, &theta, support, config, imaml);
    let leaves = load::<B, M>(template, phi.clone());
    let pred = <M::Meta as MetaModel<MetaBackend<B>>>::forward(&leaves, query.x.clone());
    let losses = query.task_losses(pred);
    // `mul_scalar`, not `div_scalar`: Burn 0.21's `div_scalar` backward rounds `1 / n`
    // to f32 (an error of 3e-8 for n = 3 even on f64 backends).
    let mean = losses.clone().sum().mul_scalar(1.0 / all_tasks as f64);
    let grads = GradientsParams::from_grads(mean.backward(), &leaves);
    let g = flat_grads(&leaves, &grads);
    let support2 = support.lift::<SecondOrder<B>>();
    let v = conjugate_gradient(&g, imaml.lambda, imaml.cg_steps, |p| {
        hessian_vector::<B, M>(template, &phi, p, &support2)
    });
    (losses.inner(), v, phi)
}

/// The iMAML meta-gradient of the mean query loss over a meta-batch with respect to the
/// initial weights `model`, with `config.imaml`'s λ and conjugate-gradient steps
/// (see the module docs). The fast weights reported are the inner optima `φ*`.
///
/// # Panics
/// If `config.imaml` is `None` (the caller chose this algorithm from it).
pub fn implicit_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
    let imaml = config
        .imaml
        .as_ref()
        .expect("implicit_meta_gradient is called for an iMAML configuration");
    let batch = &batch.with_loss(config.loss);
    let tasks = batch.tasks();
    let support = batch.support.lift::<MetaBackend<B>>();
    let query = batch.query.lift::<MetaBackend<B>>();
    let theta = flatten::<B, M>(model);
    let (query_losses, grad, fast) = if <M::Meta as MetaModel<MetaBackend<B>>>::TASK_BATCHED {
        let repeated = model.clone().map(&mut RepeatTasks(tasks));
        let (losses, v, phi) =
            solve_system::<B, M>(&repeated, &support, &query, tasks, config, imaml);
        // Each initial parameter `[1, ...]` feeds every task's copy: sum over the tasks.
        let grad = sum_tasks(v, tasks);
        let fast = Fast::Batched(load::<B, M>(&repeated, phi).valid());
        (losses, grad, fast)
    } else {
        let mut losses = Vec::with_capacity(tasks);
        let mut grad: Flat<B> = theta.iter().map(Tensor::zeros_like).collect();
        let mut fast = Vec::with_capacity(tasks);
        for t in 0..tasks {
            let (loss, v, phi) = solve_system::<B, M>(
                model,
                &support.task(t),
                &query.task(t),
                tasks,
                config,
                imaml,
            );
            losses.push(loss);
            grad = axpy(grad, 1.0, &v);
            fast.push(load::<B, M>(model, phi).valid());
        }
        (Tensor::cat(losses, 0), grad, Fast::PerTask(fast))
    };
    ModelMetaGradient {
        meta_loss: query_losses.clone().mean(),
        query_losses,
        grads: register::<B, M>(model, grad),
        step_size_grads: None,
        fast: Some(fast),
    }
}
