//! Property tests shared by `properties_f32` and `properties_f64` (one process per
//! precision: Burn fixes one default float type per device type per process).

use burn::prelude::Backend;
use maml_core::data::LinearWeights;
use maml_core::{AdaptConfig, GradientPath, Loss, Order, SetData, TaskData};
use maml_data::closed_form;
use maml_data::problem::Problem;
use maml_data::solve::solve_by;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random problem: shapes and hyperparameters from proptest (so they shrink), values
/// from a seeded RNG.
#[derive(Debug, Clone)]
pub struct Case {
    pub init: LinearWeights,
    pub tasks: Vec<TaskData>,
    pub config: AdaptConfig,
}

pub fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=8,
        1usize..=3,
        1usize..=4,
        0usize..=5,
        any::<bool>(),
        any::<bool>(),
        0.1f64..1.0,
        any::<u64>(),
    )
        .prop_map(|(d_in, d_out, tasks, k, second, mse, lr_frac, seed)| {
            let mut rng = StdRng::seed_from_u64(seed);
            let loss = if mse { Loss::Mse } else { Loss::Sse };
            // Step sizes that keep K steps stable on these sets (|x| < 1.5, n <= 6).
            let lr = lr_frac * if mse { 0.3 } else { 0.04 };
            let mut set = |n: usize| SetData {
                x: (0..n)
                    .map(|_| (0..d_in).map(|_| rng.random_range(-1.5..1.5)).collect())
                    .collect(),
                y: Some(
                    (0..n)
                        .map(|_| (0..d_out).map(|_| rng.random_range(-2.0..2.0)).collect())
                        .collect(),
                ),
            };
            let tasks: Vec<TaskData> = (0..tasks)
                .map(|_| {
                    let (ns, nq) = (1 + (seed as usize + 3) % 6, 1 + (seed as usize / 7) % 6);
                    TaskData {
                        support: set(ns),
                        query: set(nq),
                    }
                })
                .collect();
            let w: Vec<f64> = (0..d_in * d_out)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let b: Vec<f64> = (0..d_out).map(|_| rng.random_range(-1.0..1.0)).collect();
            Case {
                init: LinearWeights::from_flat(&w, &b, d_in),
                tasks,
                config: AdaptConfig::new(lr)
                    .with_inner_steps(k)
                    .with_order(if second { Order::Second } else { Order::First })
                    .with_loss(loss),
            }
        })
}

pub fn auto<B: Backend>(c: &Case, config: &AdaptConfig) -> maml_core::data::LinearAnswer {
    by::<B>(c, config, GradientPath::Auto)
}

/// The answer by `path` (`Autodiff`: nested autodiff; `Auto`: the hand-derived road).
pub fn by<B: Backend>(
    c: &Case,
    config: &AdaptConfig,
    path: GradientPath,
) -> maml_core::data::LinearAnswer {
    let device = Default::default();
    let problem = Problem::linear(&c.init, c.tasks.clone(), config);
    solve_by::<B>(&problem, path, &device)
        .expect("a valid linear problem")
        .to_linear()
        .expect("the linear model's answer has its layout")
}

pub fn rel(a: &LinearWeights, b: &LinearWeights) -> f64 {
    a.max_abs_diff(b) / b.max_abs().max(1e-9)
}

/// Nested autodiff = closed form.
pub fn autodiff_matches_closed_form<B: Backend>(c: &Case, tol: f64) -> Result<(), TestCaseError> {
    matches_closed_form::<B>(c, GradientPath::Autodiff, tol)
}

/// The linear model's hand-derived road = closed form.
pub fn hand_derived_matches_closed_form<B: Backend>(
    c: &Case,
    tol: f64,
) -> Result<(), TestCaseError> {
    matches_closed_form::<B>(c, GradientPath::Auto, tol)
}

fn matches_closed_form<B: Backend>(
    c: &Case,
    path: GradientPath,
    tol: f64,
) -> Result<(), TestCaseError> {
    let a = by::<B>(c, &c.config, path);
    let m = closed_form::meta_gradient(&c.init, &c.tasks, &c.config);
    prop_assert!(
        rel(&a.meta_grad, &m.meta_grad) <= tol,
        "{:?} vs {:?}",
        a.meta_grad,
        m.meta_grad
    );
    prop_assert!((a.meta_loss - m.meta_loss).abs() <= tol * m.meta_loss.abs().max(1e-9));
    Ok(())
}

/// One batch of tasks = the mean of the one-task meta-gradients.
pub fn batched_equals_per_task<B: Backend>(c: &Case, tol: f64) -> Result<(), TestCaseError> {
    let batched = auto::<B>(c, &c.config);
    let n = c.tasks.len() as f64;
    let mut mean = vec![0.0; c.init.d_in() * c.init.d_out() + c.init.d_out()];
    for t in &c.tasks {
        let single = Case {
            tasks: vec![t.clone()],
            ..c.clone()
        };
        let g = auto::<B>(&single, &c.config).meta_grad;
        for (m, v) in mean
            .iter_mut()
            .zip(g.weight_flat().into_iter().chain(g.bias))
        {
            *m += v / n;
        }
    }
    let d_w = c.init.d_in() * c.init.d_out();
    let mean = LinearWeights::from_flat(&mean[..d_w], &mean[d_w..], c.init.d_in());
    prop_assert!(rel(&batched.meta_grad, &mean) <= tol);
    Ok(())
}

/// `H v` for the support loss of one task of the linear model, `v` in its layout: the
/// loss is `s Σ_rows Σ_o (w_o · x + b_o - y_o)²`, so `(H v)_o = 2 s Σ_rows z (z · v_o)`
/// with `z = [x; 1]`, `v_o = [v's weight row o; v's bias o]`, `s` 1 (sse) or
/// `1 / (rows · outputs)` (mse).
fn support_hessian_times(task: &TaskData, loss: Loss, v: &LinearWeights) -> LinearWeights {
    let (d_in, d_out) = (v.d_in(), v.d_out());
    let rows = task.support.x.len();
    let s = match loss {
        Loss::Mse => 1.0 / (rows * d_out) as f64,
        _ => 1.0,
    };
    let mut out = LinearWeights::from_flat(&vec![0.0; d_in * d_out], &vec![0.0; d_out], d_in);
    for x in &task.support.x {
        for o in 0..d_out {
            let zv: f64 = x.iter().zip(&v.weight[o]).map(|(a, b)| a * b).sum::<f64>() + v.bias[o];
            for (w, xi) in out.weight[o].iter_mut().zip(x) {
                *w += 2.0 * s * xi * zv;
            }
            out.bias[o] += 2.0 * s * zv;
        }
    }
    out
}

/// The orders differ by exactly the inner gradient's derivative: after one inner step of
/// size α, each task's second-order meta-gradient is `(I - α H_support) g` with `g` its
/// first-order one (both by nested autodiff, which reads the order; `H` by hand).
pub fn orders_differ_by_the_support_hessian<B: Backend>(
    c: &Case,
    tol: f64,
) -> Result<(), TestCaseError> {
    let config = c.config.clone().with_inner_steps(1);
    let path = GradientPath::Autodiff;
    for task in &c.tasks {
        let single = Case {
            tasks: vec![task.clone()],
            ..c.clone()
        };
        let first = by::<B>(&single, &config.clone().with_order(Order::First), path).meta_grad;
        let second = by::<B>(&single, &config.clone().with_order(Order::Second), path).meta_grad;
        let h = support_hessian_times(task, config.loss, &first);
        let lr = config.inner_lr;
        let expected = LinearWeights {
            weight: first
                .weight
                .iter()
                .zip(&h.weight)
                .map(|(g, h)| g.iter().zip(h).map(|(g, h)| g - lr * h).collect())
                .collect(),
            bias: first
                .bias
                .iter()
                .zip(&h.bias)
                .map(|(g, h)| g - lr * h)
                .collect(),
        };
        prop_assert!(
            rel(&second, &expected) <= tol,
            "{:?} vs {:?}",
            second,
            expected
        );
    }
    Ok(())
}
