//! Second-order meta-gradients against central finite differences of the meta-loss.

use burn::prelude::Backend;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::{AdaptConfig, GradientPath, Loss, Order, TaskData};
use rand::Rng;

use crate::common::{Shape, is_f64, linear_answer, random_tasks, random_weights, rng};

fn meta_loss<B: Backend>(
    w: &LinearWeights,
    tasks: &[TaskData],
    config: &AdaptConfig,
    device: &B::Device,
) -> f64 {
    linear_answer::<B>(w, tasks, config, GradientPath::Auto, device).meta_loss
}

/// The meta-loss of a linear model is a quadratic in the initial weights, so a central
/// difference `(L(θ + h e_i) - L(θ - h e_i)) / 2h` equals the exact derivative up to
/// rounding (about `eps * L / h`): in f64 with `h = 1e-3` that is ~1e-12, and 1e-7 is a
/// safe bound; in f32 `h = 3e-2` keeps it near 1e-4. Second order must match; first
/// order must not (the problems are chosen with K >= 1, where the two differ).
fn second_order_matches_finite_differences<B: Backend>(device: &B::Device) {
    let (h, tol) = if is_f64::<B>() {
        (1e-3, 1e-7)
    } else {
        (3e-2, 2e-3)
    };
    let mut rng = rng(11);
    for case in 0..6 {
        let shape = Shape {
            d_in: rng.random_range(1..=4),
            d_out: rng.random_range(1..=2),
            tasks: rng.random_range(1..=3),
        };
        let loss = if case % 2 == 0 { Loss::Mse } else { Loss::Sse };
        let lr = if loss == Loss::Mse { 0.2 } else { 0.05 };
        let config = AdaptConfig::new(lr)
            .with_inner_steps(rng.random_range(1..=4))
            .with_order(Order::Second)
            .with_loss(loss);
        let init = random_weights(&mut rng, shape);
        let tasks = random_tasks(&mut rng, shape);

        let auto = GradientPath::Auto;
        let second = linear_answer::<B>(&init, &tasks, &config, auto, device).meta_grad;
        let first_order = config.clone().with_order(Order::First);
        let first = linear_answer::<B>(&init, &tasks, &first_order, auto, device).meta_grad;

        let flat = |w: &LinearWeights| [w.weight_flat(), w.bias.clone()].concat();
        let n_w = shape.d_in * shape.d_out;
        let theta = flat(&init);
        let fd: Vec<f64> = (0..theta.len())
            .map(|i| {
                let mut plus = theta.clone();
                let mut minus = theta.clone();
                plus[i] += h;
                minus[i] -= h;
                let at = |v: &[f64]| LinearWeights::from_flat(&v[..n_w], &v[n_w..], shape.d_in);
                (meta_loss::<B>(&at(&plus), &tasks, &config, device)
                    - meta_loss::<B>(&at(&minus), &tasks, &config, device))
                    / (2.0 * h)
            })
            .collect();
        let scale = fd.iter().fold(1e-6_f64, |m, v| m.max(v.abs()));
        let err = |g: &LinearWeights| {
            flat(g)
                .iter()
                .zip(&fd)
                .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()))
                / scale
        };
        assert!(
            err(&second) <= tol,
            "case {case}: second order vs finite differences: relative error {:e}\n auto {second:?}\n fd {fd:?}",
            err(&second)
        );
        assert!(
            err(&first) > 10.0 * tol,
            "case {case}: first order should differ from the finite differences, error {:e}",
            err(&first)
        );
    }
}

crate::backend_tests!(second_order_matches_finite_differences);
