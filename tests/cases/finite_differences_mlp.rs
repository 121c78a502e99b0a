//! Property test of the model-agnostic core: the automatic meta-gradient of random MLP
//! problems (depth, widths, activation, loss, inner steps including 0, both orders,
//! Meta-SGD, ragged tasks) against central finite differences of the meta-loss, in f64.

use burn::prelude::Backend;
use maml_burn::maml_core::model::mlp::Activation;
use maml_burn::maml_core::model::mlp::MlpWeights;
use maml_burn::maml_core::{Loss, Order, SetData, TaskData};
use maml_burn::maml_data::problem::InnerLr;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::problem::ProblemFormat;
use maml_burn::maml_data::solve::finite_differences;
use maml_burn::maml_data::solve::solve;
use rand::Rng;

use crate::common::{is_f64, rng};

pub(crate) fn random_problem(seed: u64) -> Problem {
    let mut rng = rng(seed);
    let depth = rng.random_range(1..=3);
    let mut sizes = vec![rng.random_range(1..=3)];
    for _ in 0..depth {
        sizes.push(rng.random_range(1..=4));
    }
    let loss = [Loss::Sse, Loss::Mse, Loss::CrossEntropy][rng.random_range(0..3)];
    if loss == Loss::CrossEntropy {
        *sizes.last_mut().expect("at least two sizes") = rng.random_range(2..=3);
    }
    let (d_in, d_out) = (sizes[0], *sizes.last().expect("sizes"));
    let mut weights = MlpWeights::uniform_fan_in(&sizes, seed);
    for layer in &mut weights.layers {
        for b in &mut layer.bias {
            *b += rng.random_range(-0.3..0.3);
        }
    }
    let set = |rng: &mut rand::rngs::StdRng| {
        let n = rng.random_range(1..=4);
        let x = (0..n)
            .map(|_| (0..d_in).map(|_| rng.random_range(-1.5..1.5)).collect())
            .collect();
        let y = match loss {
            Loss::CrossEntropy => (0..n)
                .map(|_| {
                    let mut row = vec![0.0; d_out];
                    row[rng.random_range(0..d_out)] = 1.0;
                    row
                })
                .collect(),
            _ => (0..n)
                .map(|_| (0..d_out).map(|_| rng.random_range(-1.0..1.0)).collect())
                .collect(),
        };
        SetData { x, y: Some(y) }
    };
    let tasks = (0..rng.random_range(1..=3))
        .map(|_| TaskData {
            support: set(&mut rng),
            query: set(&mut rng),
        })
        .collect();
    let inner_lr = if rng.random_bool(0.3) {
        let mut sizes = weights.clone();
        for layer in &mut sizes.layers {
            layer
                .weight
                .iter_mut()
                .flatten()
                .for_each(|w| *w = rng.random_range(0.05..0.3));
            layer
                .bias
                .iter_mut()
                .for_each(|b| *b = rng.random_range(0.05..0.3));
        }
        InnerLr::PerParameter(sizes.to_layered())
    } else {
        InnerLr::Scalar(rng.random_range(0.05..0.3))
    };
    let activation = if rng.random_bool(0.5) {
        Activation::Tanh
    } else {
        Activation::Relu
    };
    Problem {
        model: weights.to_spec(activation),
        tasks,
        inner_lr,
        inner_steps: rng.random_range(0..=3),
        order: if rng.random_bool(0.5) {
            Order::First
        } else {
            Order::Second
        },
        loss,
        imaml: None,
        inner_checkpoint_every: None,
        family: Default::default(),
        format: ProblemFormat::Mlp,
    }
}

/// Second order: the automatic meta-gradient (and Meta-SGD's step-size gradient) equals
/// central finite differences (ε = 1e-6) to 1e-6 of the largest entry. First order is
/// not the derivative of the meta-loss; there only `inner_steps = 0` and the step sizes'
/// gradient with K = 1 would match, so first-order problems are checked through their
/// second-order twin.
fn mlp_meta_gradient_matches_finite_differences<B: Backend>(device: &B::Device) {
    if !is_f64::<B>() {
        return; // finite differences need f64
    }
    for seed in 0..24 {
        let mut problem = random_problem(seed);
        problem.order = Order::Second;
        let answer = solve::<B>(&problem, device).unwrap();
        let (grad, lr_grad) = finite_differences::<B>(&problem, 1e-6, device).unwrap();
        let scale = grad.max_abs().max(1e-3);
        let diff = answer.meta_grad.max_abs_diff(&grad);
        assert!(
            diff <= 1e-6 * scale,
            "seed {seed}: meta_grad off by {diff:e} (scale {scale:e}): {problem:?}"
        );
        if let (Some(a), Some(e)) = (&answer.inner_lr_grad, &lr_grad) {
            let scale = e.max_abs().max(1e-3);
            let diff = a.max_abs_diff(e);
            assert!(
                diff <= 1e-6 * scale,
                "seed {seed}: inner_lr_grad off by {diff:e}"
            );
        }
        assert_eq!(
            answer.inner_lr_grad.is_some(),
            lr_grad.is_some(),
            "seed {seed}"
        );
    }
}

/// With no inner step, first and second order agree exactly (both are the gradient of
/// the query loss at the initial weights), and equal finite differences.
fn mlp_orders_agree_without_adaptation<B: Backend>(device: &B::Device) {
    let tol = if is_f64::<B>() { 1e-12 } else { 1e-5 };
    for seed in 100..106 {
        let mut problem = random_problem(seed);
        problem.inner_steps = 0;
        problem.order = Order::First;
        let first = solve::<B>(&problem, device).unwrap();
        problem.order = Order::Second;
        let second = solve::<B>(&problem, device).unwrap();
        let scale = second.meta_grad.max_abs().max(1e-6);
        assert!(
            first.meta_grad.max_abs_diff(&second.meta_grad) <= tol * scale,
            "seed {seed}"
        );
    }
}

crate::backend_tests!(
    mlp_meta_gradient_matches_finite_differences,
    mlp_orders_agree_without_adaptation
);
