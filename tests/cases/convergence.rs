//! The seed's point made visible: on a fixed task set where the orders disagree,
//! second-order meta-training converges to the exact MAML optimum (closed form, f64
//! linear solve), while first-order meta-training converges to its own, different point.

use burn::prelude::Backend;
use maml_burn::maml_core::{AdaptConfig, Loss, MetaConfig, MetaOptimizer, Order};
use maml_burn::maml_data::closed_form::optimum;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::run::TrainConfig;

use crate::common::{data_dir, is_f64, linear_trainer, linear_weights};

/// Full-batch SGD (meta_lr 0.1) for 600 steps on tests/data/convergence-tasks.json
/// (in 2, out 1, 4 tasks, K = 2, inner_lr 0.08, sse). The meta-loss is a quadratic with
/// a well-conditioned Hessian here, so plain gradient descent converges linearly: in f64
/// to ~1e-15 (bound 1e-8), in f32 to rounding (bound 1e-3).
fn second_order_training_converges_to_the_exact_optimum<B: Backend>(device: &B::Device) {
    let tol = if is_f64::<B>() { 1e-8 } else { 1e-3 };
    let problem = Problem::load(data_dir().join("convergence-tasks.json")).unwrap();
    let adapt = AdaptConfig::new(0.08)
        .with_inner_steps(2)
        .with_loss(Loss::Sse);
    let opt = optimum(&problem.tasks, 1, &adapt).unwrap();
    // The two points differ by far more than the tolerance: the orders disagree.
    let gap = opt.first_order.max_abs_diff(&opt.second_order) / opt.second_order.max_abs();
    assert!(gap > 0.05, "first- and second-order optima differ: {gap}");

    for order in [Order::Second, Order::First] {
        let meta = MetaConfig::new(adapt.clone().with_order(order))
            .with_meta_lr(0.1)
            .with_meta_optimizer(MetaOptimizer::Sgd);
        let tasks = TaskSource::File {
            path: data_dir()
                .join("convergence-tasks.json")
                .display()
                .to_string(),
        };
        let config = TrainConfig::new(meta, tasks)
            .with_meta_batch(problem.tasks.len())
            .with_meta_steps(600);
        let mut trainer = linear_trainer::<B>(config, problem.linear_weights(), device);
        for _ in 0..600 {
            trainer.step().unwrap();
        }
        let w = linear_weights(&trainer);
        let (target, other) = match order {
            Order::Second => (&opt.second_order, &opt.first_order),
            Order::First => (&opt.first_order, &opt.second_order),
        };
        let err = w.max_abs_diff(target) / target.max_abs();
        let away = w.max_abs_diff(other) / other.max_abs();
        assert!(
            err <= tol,
            "{order} order: relative distance {err:e} to its limit > {tol:e}"
        );
        assert!(
            away > 0.04,
            "{order} order ends {away} from the other order's point"
        );
    }
}

crate::backend_tests!(second_order_training_converges_to_the_exact_optimum);
