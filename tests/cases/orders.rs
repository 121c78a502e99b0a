//! First versus second order: the seed's two runs, where the orders must differ and
//! where they must agree, and the tracked / detached state of the support gradient.

use burn::prelude::Backend;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::{AdaptConfig, GradientPath, Loss, MetaConfig, Order, SetData, TaskData};
use maml_burn::maml_data::closed_form;
use maml_burn::maml_data::trace::trace_meta_step;
use maml_burn::seed::seed_printout;
use rand::Rng;

use crate::common::{
    Shape, assert_close, assert_weights_close, linear_answer, random_tasks, random_weights, rng,
    tolerance,
};

fn seed_task() -> TaskData {
    TaskData {
        support: SetData {
            x: vec![vec![1.0]],
            y: None,
        },
        query: SetData {
            x: vec![vec![2.0]],
            y: None,
        },
    }
}

fn seed_config(order: Order) -> MetaConfig {
    MetaConfig::new(
        AdaptConfig::new(1.0)
            .with_inner_steps(1)
            .with_order(order)
            .with_loss(Loss::Sse),
    )
    .with_meta_lr(1.0)
}

/// The seed document's printed numbers (PyTorch, float32): support gradients, fast
/// weights, automatic meta-gradient and updated w0, for both runs.
fn seed_runs_print_the_seed_numbers<B: Backend>(device: &B::Device) {
    // (order, w0, support grad, w1 = b1 magnitude, meta-grad, updated w0) from
    // shared/seed/000_59ce95855d9a8594.txt.
    let runs = [
        (
            Order::First,
            -1.9347891807556152,
            -3.8695783615112305,
            30.956626892089844,
            -32.891414642333984,
        ),
        (
            Order::Second,
            -0.7597505450248718,
            -1.5195010900497437,
            -24.312015533447266,
            23.552265167236328,
        ),
    ];
    let tol = 1e-6; // float32 precision of the seed's prints
    for (order, w0, g, meta, updated) in runs {
        let init = LinearWeights::from_flat(&[w0], &[0.0], 1);
        let t = trace_meta_step::<B>(&init, &[seed_task()], seed_config(order), device).unwrap();
        let step = &t.inner_steps[0];
        assert_close(step.support_grad[0].weight[0][0], g, tol, "gradient of w0");
        assert_close(step.support_grad[0].bias[0], g, tol, "gradient of b0");
        assert_close(t.fast_weights[0].weight[0][0], w0 - g, tol, "w1");
        assert_close(t.fast_weights[0].bias[0], -g, tol, "b1");
        assert_close(
            t.meta_grad.weight[0][0],
            meta,
            tol,
            "automatic meta-gradient",
        );
        assert_close(t.updated.weight[0][0], updated, tol, "updated w0");
        // The closed form must agree with the automatic one.
        assert_close(
            t.manual_meta_grad.weight[0][0],
            meta,
            tol,
            "manual meta-gradient",
        );
    }
}

/// The seed's printout, line for line: every line of the seed document's two runs
/// (`tests/data/seed-printout.txt`, copied from it) appears in order in what the `cpu`
/// example prints, numbers as Python writes them (`0.0`, `-1.9347891807556152`). The
/// seed computed in float32, so f64 backends print other digits and are checked by
/// `seed_runs_print_the_seed_numbers` alone.
fn the_printout_has_every_line_of_the_seed_in_order<B: Backend>(device: &B::Device) {
    if crate::common::is_f64::<B>() {
        return;
    }
    let seed = std::fs::read_to_string(crate::common::data_dir().join("seed-printout.txt"))
        .expect("tests/data/seed-printout.txt is in the repository");
    let mut printed = Vec::new();
    for (order, w0) in [
        (Order::First, -1.9347891807556152),
        (Order::Second, -0.7597505450248718),
    ] {
        let init = LinearWeights::from_flat(&[w0], &[0.0], 1);
        let t = trace_meta_step::<B>(&init, &[seed_task()], seed_config(order), device).unwrap();
        printed.extend(seed_printout(&t));
    }
    let mut at = 0;
    for line in seed.lines() {
        match printed[at..].iter().position(|p| p == line) {
            Some(i) => at += i + 1,
            None => panic!(
                "the seed's line {line:?} is not printed (in order); printed:\n{}",
                printed.join("\n")
            ),
        }
    }
}

/// PyTorch's `requires_grad` / `is_leaf` lines of the seed: the support gradient is
/// tracked (not a leaf) in second order and detached (a leaf) in first order; the
/// initial weights are leaves and the fast weights are not, in both orders.
fn support_gradient_is_tracked_only_in_second_order<B: Backend>(device: &B::Device) {
    let init = LinearWeights::from_flat(&[0.3], &[-0.2], 1);
    for order in [Order::First, Order::Second] {
        let mut config = seed_config(order);
        config.adapt.inner_steps = 3;
        config.adapt.inner_lr = 0.1;
        let t = trace_meta_step::<B>(&init, &[seed_task()], config, device).unwrap();
        assert_eq!(t.inner_steps.len(), 3);
        for step in &t.inner_steps {
            assert_eq!(step.grad_requires_grad, order == Order::Second, "{order}");
        }
        assert!(t.initial_is_leaf, "{order}: initial weights are leaves");
        assert!(
            t.fast_tracked,
            "{order}: fast weights are computed from the initial ones"
        );
    }
}

/// With K >= 1 the orders differ by the closed-form amount `mean_t G_t (I - (M_t^K)^T)`;
/// with K = 0 there is no inner gradient and they are equal.
fn first_order_differs_from_second_exactly_where_the_math_says<B: Backend>(device: &B::Device) {
    let tol = 2.0 * tolerance::<B>();
    let mut rng = rng(3);
    for inner_steps in [0, 1, 3] {
        let shape = Shape {
            d_in: 3,
            d_out: 2,
            tasks: 3,
        };
        let init = random_weights(&mut rng, shape);
        let tasks = random_tasks(&mut rng, shape);
        let config = AdaptConfig::new(0.03)
            .with_inner_steps(inner_steps)
            .with_loss(Loss::Sse);
        let grad = |order| {
            let config = config.clone().with_order(order);
            linear_answer::<B>(&init, &tasks, &config, GradientPath::Auto, device).meta_grad
        };
        let (first, second) = (grad(Order::First), grad(Order::Second));
        let manual = |order| {
            closed_form::meta_gradient(&init, &tasks, &config.clone().with_order(order)).meta_grad
        };
        let (m_first, m_second) = (manual(Order::First), manual(Order::Second));
        let gap = m_first.max_abs_diff(&m_second);
        if inner_steps == 0 {
            assert_eq!(gap, 0.0, "K = 0: the closed forms coincide");
            assert!(first.max_abs_diff(&second) <= tol * first.max_abs().max(1e-12));
        } else {
            assert!(
                gap > 1e-3 * m_second.max_abs(),
                "K = {inner_steps}: the orders must differ"
            );
            assert_weights_close(&first, &m_first, tol, "first order");
            assert_weights_close(&second, &m_second, tol, "second order");
        }
    }
}

/// The batched meta-batch equals the per-task computation: the meta-gradient of the
/// batch is the mean of the one-task meta-gradients, and each task's fast weights match.
fn batched_tasks_equal_per_task_computation<B: Backend>(device: &B::Device) {
    let tol = 2.0 * tolerance::<B>();
    let mut rng = rng(5);
    for order in [Order::First, Order::Second] {
        let shape = Shape {
            d_in: 4,
            d_out: 2,
            tasks: 4,
        };
        let init = random_weights(&mut rng, shape);
        let tasks = random_tasks(&mut rng, shape);
        let loss = if rng.random_bool(0.5) {
            Loss::Mse
        } else {
            Loss::Sse
        };
        let config = AdaptConfig::new(0.05)
            .with_inner_steps(2)
            .with_order(order)
            .with_loss(loss);
        let auto = GradientPath::Auto;
        let batched = linear_answer::<B>(&init, &tasks, &config, auto, device);
        let singles: Vec<_> = tasks
            .iter()
            .map(|t| linear_answer::<B>(&init, std::slice::from_ref(t), &config, auto, device))
            .collect();
        let n = tasks.len() as f64;
        let mean_loss = singles.iter().map(|a| a.meta_loss).sum::<f64>() / n;
        assert_close(batched.meta_loss, mean_loss, tol, "meta-loss");
        let mean_grad =
            singles
                .iter()
                .fold(LinearWeights::zeros(shape.d_in, shape.d_out), |acc, a| {
                    let w: Vec<f64> = acc
                        .weight_flat()
                        .iter()
                        .zip(a.meta_grad.weight_flat())
                        .map(|(x, y)| x + y / n)
                        .collect();
                    let b: Vec<f64> = acc
                        .bias
                        .iter()
                        .zip(&a.meta_grad.bias)
                        .map(|(x, y)| x + y / n)
                        .collect();
                    LinearWeights::from_flat(&w, &b, shape.d_in)
                });
        assert_weights_close(&batched.meta_grad, &mean_grad, tol, "meta-gradient");
        for (t, single) in singles.iter().enumerate() {
            assert_weights_close(
                &batched.fast_weights[t],
                &single.fast_weights[0],
                tol,
                "fast weights",
            );
        }
    }
}

crate::backend_tests!(
    seed_runs_print_the_seed_numbers,
    the_printout_has_every_line_of_the_seed_in_order,
    support_gradient_is_tracked_only_in_second_order,
    first_order_differs_from_second_exactly_where_the_math_says,
    batched_tasks_equal_per_task_computation,
);
