//! Implicit MAML (iMAML) against independent values: the closed form of the linear
//! model's proximal inner optimum and implicit meta-gradient (f64 on the host, nalgebra),
//! and central finite differences of the meta-loss at the inner optimum for MLPs.

use burn::prelude::Backend;
use maml_burn::maml_core::config::Imaml;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::model::mlp::MlpWeights;
use maml_burn::maml_core::{AdaptConfig, Loss, TaskData};
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::InnerLr;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::solve::finite_differences;
use maml_burn::maml_data::solve::solve;
use nalgebra::DMatrix;
use rand::Rng;

use crate::common::{
    Shape, assert_close, assert_weights_close, is_f64, random_tasks, random_weights, rng,
};

/// A set's features with a column of ones `[n, in + 1]`, and its targets `[n, out]`
/// (zero when absent).
fn design(x: &[Vec<f64>], y: Option<&Vec<Vec<f64>>>, d_out: usize) -> (DMatrix<f64>, DMatrix<f64>) {
    let (n, d_in) = (x.len(), x[0].len());
    let xt = DMatrix::from_fn(n, d_in + 1, |i, j| if j < d_in { x[i][j] } else { 1.0 });
    let yt = DMatrix::from_fn(n, d_out, |i, o| y.map_or(0.0, |y| y[i][o]));
    (xt, yt)
}

/// The loss's factor on the sum of squares: 1 (sse) or 1 / (n · out) (mse).
fn factor(loss: Loss, n: usize, d_out: usize) -> f64 {
    match loss {
        Loss::Mse => 1.0 / (n * d_out) as f64,
        _ => 1.0,
    }
}

/// The closed form: per task, with `H = 2c X̃ᵀX̃` (every output column alike),
/// `φ* = (H + λI)⁻¹ (λθ + 2c X̃ᵀy)` and the meta-gradient
/// `λ (H + λI)⁻¹ ∇L_query(φ*)`; meta-loss and meta-gradient are means over the tasks.
/// Parameters are the columns `[w_o; b_o]`.
fn closed_form(
    init: &LinearWeights,
    tasks: &[TaskData],
    loss: Loss,
    lambda: f64,
) -> (f64, LinearWeights) {
    let (d_in, d_out) = (init.d_in(), init.d_out());
    let theta = DMatrix::from_fn(d_in + 1, d_out, |j, o| {
        if j < d_in {
            init.weight[o][j]
        } else {
            init.bias[o]
        }
    });
    let mut meta_loss = 0.0;
    let mut grad = DMatrix::<f64>::zeros(d_in + 1, d_out);
    for task in tasks {
        let (xs, ys) = design(&task.support.x, task.support.y.as_ref(), d_out);
        let (xq, yq) = design(&task.query.x, task.query.y.as_ref(), d_out);
        let cs = factor(loss, xs.nrows(), d_out);
        let cq = factor(loss, xq.nrows(), d_out);
        let h = xs.transpose() * &xs * (2.0 * cs);
        let a = &h + DMatrix::<f64>::identity(d_in + 1, d_in + 1) * lambda;
        let lu = a.lu();
        let phi = lu
            .solve(&(&theta * lambda + xs.transpose() * &ys * (2.0 * cs)))
            .expect("H + λI is positive definite");
        let residual = &xq * &phi - &yq;
        meta_loss += cq * residual.norm_squared();
        let g = xq.transpose() * residual * (2.0 * cq);
        grad += lu.solve(&g).expect("H + λI is positive definite") * lambda;
    }
    let t = tasks.len() as f64;
    grad /= t;
    let weights = LinearWeights {
        weight: (0..d_out)
            .map(|o| (0..d_in).map(|j| grad[(j, o)]).collect())
            .collect(),
        bias: (0..d_out).map(|o| grad[(d_in, o)]).collect(),
    };
    (meta_loss / t, weights)
}

/// A step size under which the proximal inner loop converges fast on every task:
/// `1 / (trace(H) + λ)` (the trace bounds the largest eigenvalue).
fn safe_inner_lr(tasks: &[TaskData], loss: Loss, d_out: usize, lambda: f64) -> f64 {
    tasks
        .iter()
        .map(|t| {
            let (xs, _) = design(&t.support.x, None, d_out);
            let h = xs.transpose() * &xs * (2.0 * factor(loss, xs.nrows(), d_out));
            1.0 / (h.trace() + lambda)
        })
        .fold(f64::INFINITY, f64::min)
}

/// 16 random linear problems (in 1..=5, out 1..=2, 1 to 4 tasks of different sizes, sse
/// and mse, λ in 0.5..4): the meta-loss and meta-gradient equal the closed form, to
/// 1e-9 of the largest entry, with enough inner steps for the inner loop to reach the
/// optimum and enough conjugate-gradient steps to be exact. f64 only (the `backends_f64`
/// binary). Three tasks catch a mean whose `1 / 3` is rounded to f32 in the backward
/// pass (Burn 0.21's `div_scalar`).
fn imaml_matches_its_closed_form_on_random_linear_problems<B: Backend>(device: &B::Device) {
    closed_form_cases::<B>(1..=4, device);
}

fn closed_form_cases<B: Backend>(tasks: std::ops::RangeInclusive<usize>, device: &B::Device) {
    let tol = 1e-9;
    let mut rng = rng(41);
    for case in 0..16 {
        let shape = Shape {
            d_in: rng.random_range(1..=5),
            d_out: rng.random_range(1..=2),
            tasks: rng.random_range(tasks.clone()),
        };
        let loss = if case % 2 == 0 { Loss::Sse } else { Loss::Mse };
        let lambda = rng.random_range(0.5..4.0);
        let init = random_weights(&mut rng, shape);
        let tasks = random_tasks(&mut rng, shape);
        let lr = safe_inner_lr(&tasks, loss, shape.d_out, lambda);
        let imaml = Imaml {
            lambda,
            cg_steps: 4 * (shape.d_in + 1) * shape.d_out * shape.tasks,
        };
        let config = AdaptConfig::new(lr)
            .with_inner_steps(4000)
            .with_loss(loss)
            .with_imaml(Some(imaml));
        let answer = solve::<B>(&Problem::linear(&init, tasks.clone(), &config), device)
            .expect("a valid iMAML problem")
            .to_linear()
            .expect("the linear model's layout");
        let (meta_loss, meta_grad) = closed_form(&init, &tasks, loss, lambda);
        let what = format!("case {case}: {shape:?} {loss} λ = {lambda}");
        assert_close(answer.meta_loss, meta_loss, tol, &what);
        assert_weights_close(&answer.meta_grad, &meta_grad, tol, &what);
    }
}

/// The implicit meta-gradient `answer` of `problem` equals central finite differences
/// (ε = 1e-6) of its meta-loss to 1e-6 of the largest entry.
fn assert_matches_finite_differences<B: Backend>(
    problem: &Problem,
    answer: &Answer,
    seed: u64,
    device: &B::Device,
) {
    let (grad, _) = finite_differences::<B>(problem, 1e-6, device).expect("f64");
    let scale = grad.max_abs().max(1e-3);
    let diff = answer.meta_grad.max_abs_diff(&grad);
    assert!(
        diff <= 1e-6 * scale,
        "seed {seed}: meta_grad off by {diff:e} (scale {scale:e}): {problem:?}"
    );
}

/// Random small MLPs (tanh, mse), λ large enough for the inner problem to be strongly
/// convex: the implicit meta-gradient equals central finite differences (ε = 1e-6) of
/// the meta-loss at the inner optimum, to 1e-6 of the largest entry. f64 only.
fn imaml_meta_gradient_of_mlps_matches_finite_differences<B: Backend>(device: &B::Device) {
    if !is_f64::<B>() {
        return; // finite differences need f64
    }
    for seed in 0..4 {
        let mut rng = rng(100 + seed);
        let sizes = [rng.random_range(1..=2), rng.random_range(2..=3), 1];
        let weights = MlpWeights::uniform_fan_in(&sizes, seed);
        let shape = Shape {
            d_in: sizes[0],
            d_out: 1,
            tasks: rng.random_range(1..=2),
        };
        let tasks = random_tasks(&mut rng, shape);
        let config = AdaptConfig::new(0.1)
            .with_inner_steps(600)
            .with_loss(Loss::Mse)
            .with_imaml(Some(Imaml {
                lambda: 2.0,
                cg_steps: 40,
            }));
        let spec = weights.to_spec(maml_burn::maml_core::model::mlp::Activation::Tanh);
        let problem = Problem::new(spec, tasks, &config);
        let answer = solve::<B>(&problem, device).expect("a valid iMAML problem");
        assert_matches_finite_differences::<B>(&problem, &answer, seed, device);
    }
}

/// Random small conv nets (conv2d, batch norm, ReLU or tanh, pooling, the shared
/// generator of the conv finite-difference tests), λ = 4: the implicit meta-gradient
/// equals central finite differences of the meta-loss at the inner optimum, to 1e-6 of
/// the largest entry. The inner loop must have converged for the two to agree (with a
/// step size of 0.1 it oscillates on some of these nets), so that is checked first:
/// one more inner step changes the fast weights by less than 1e-10. f64 only.
fn imaml_meta_gradient_of_conv_nets_matches_finite_differences<B: Backend>(device: &B::Device) {
    if !is_f64::<B>() {
        return; // finite differences need f64
    }
    // Seed 2's inner loop needs about twice the steps to converge; two nets keep the
    // test short.
    for seed in 0..2 {
        let mut problem = crate::finite_differences_conv::random_problem(seed);
        problem.inner_lr = InnerLr::Scalar(0.02);
        problem.inner_steps = 400;
        problem.imaml = Some(Imaml {
            lambda: 4.0,
            cg_steps: 80,
        });
        let answer = solve::<B>(&problem, device).expect("a valid iMAML problem");
        let one_more = Problem {
            inner_steps: 401,
            ..problem.clone()
        };
        let next = solve::<B>(&one_more, device).expect("a valid iMAML problem");
        for (a, b) in answer.fast_weights.iter().zip(&next.fast_weights) {
            let moved = a.max_abs_diff(b);
            assert!(
                moved <= 1e-10,
                "seed {seed}: the inner loop moves by {moved:e}"
            );
        }
        assert_matches_finite_differences::<B>(&problem, &answer, seed, device);
    }
}

crate::backend_tests!(
    imaml_matches_its_closed_form_on_random_linear_problems,
    imaml_meta_gradient_of_mlps_matches_finite_differences,
    imaml_meta_gradient_of_conv_nets_matches_finite_differences,
);
