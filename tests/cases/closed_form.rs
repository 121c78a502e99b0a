//! Meta-gradients by both gradient paths (hand-derived, nested autodiff) against the
//! closed form (f64 on the host, no tensors) on random shapes.

use burn::prelude::Backend;
use maml_burn::maml_core::{AdaptConfig, GradientPath, Loss, Order};
use maml_burn::maml_data::closed_form;
use rand::Rng;

use crate::common::{
    Shape, assert_close, assert_weights_close, linear_answer, random_tasks, random_weights, rng,
    stable_inner_lr, tolerance,
};

/// 40 random problems (in 1..=8, out 1..=3, K 0..=5, 1..=4 tasks of different sizes,
/// both orders, both losses), each by both paths: tensors = closed form, meta-loss,
/// meta-gradient and fast weights.
fn each_gradient_path_matches_closed_form_on_random_shapes<B: Backend>(device: &B::Device) {
    let tol = 2.0 * tolerance::<B>();
    let mut rng = rng(7);
    for case in 0..40 {
        let shape = Shape {
            d_in: rng.random_range(1..=8),
            d_out: rng.random_range(1..=3),
            tasks: rng.random_range(1..=4),
        };
        let loss = if rng.random_bool(0.5) {
            Loss::Sse
        } else {
            Loss::Mse
        };
        let order = if case % 2 == 0 {
            Order::Second
        } else {
            Order::First
        };
        let config = AdaptConfig::new(stable_inner_lr(&mut rng, loss))
            .with_inner_steps(rng.random_range(0..=5))
            .with_order(order)
            .with_loss(loss);
        let init = random_weights(&mut rng, shape);
        let tasks = random_tasks(&mut rng, shape);

        let manual = closed_form::meta_gradient(&init, &tasks, &config);
        for path in [GradientPath::Auto, GradientPath::Autodiff] {
            let answer = linear_answer::<B>(&init, &tasks, &config, path, device);
            let what = format!("case {case} ({path}): {shape:?} {config:?}");
            assert_close(answer.meta_loss, manual.meta_loss, tol, &what);
            assert_weights_close(&answer.meta_grad, &manual.meta_grad, tol, &what);
            for (a, m) in answer.fast_weights.iter().zip(&manual.fast_weights) {
                assert_weights_close(a, m, tol, &what);
            }
        }
    }
}

crate::backend_tests!(each_gradient_path_matches_closed_form_on_random_shapes);
