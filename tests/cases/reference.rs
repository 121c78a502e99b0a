//! Every shared reference problem (tests/data, copied from shared/reference/problems),
//! answered on each backend by both gradient paths: hand-derived (the default) and
//! nested autodiff.

use burn::prelude::Backend;
use maml_burn::maml_core::GradientPath;
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::solve::solve_by;

use crate::common::{assert_close, assert_weights_close, data_dir, reference_problems, tolerance};

/// Meta-loss, meta-gradient and every task's fast weights within the tolerance (f32:
/// 1e-4, f64: 1e-9, relative to the largest entry) of the PyTorch float64 answers.
fn every_reference_problem_is_reproduced_by_each_path<B: Backend>(device: &B::Device) {
    let tol = tolerance::<B>();
    for (name, path) in reference_problems()
        .into_iter()
        .flat_map(|name| [GradientPath::Auto, GradientPath::Autodiff].map(|p| (name.clone(), p)))
    {
        let problem = Problem::load(data_dir().join(format!("{name}.json"))).unwrap();
        let expected = Answer::load(data_dir().join(format!("{name}.expected.json")))
            .unwrap()
            .to_linear()
            .expect("a version-1 answer: the linear model's layout");
        let answer = solve_by::<B>(&problem, path, device)
            .unwrap()
            .to_linear()
            .expect("a version-1 problem is the linear model");
        let name = format!("{name} ({path})");
        assert_close(
            answer.meta_loss,
            expected.meta_loss,
            tol,
            &format!("{name} meta_loss"),
        );
        assert_weights_close(
            &answer.meta_grad,
            &expected.meta_grad,
            tol,
            &format!("{name} meta_grad"),
        );
        assert_eq!(
            answer.fast_weights.len(),
            expected.fast_weights.len(),
            "{name}: tasks"
        );
        for (t, (a, e)) in answer
            .fast_weights
            .iter()
            .zip(&expected.fast_weights)
            .enumerate()
        {
            assert_weights_close(a, e, tol, &format!("{name} fast_weights[{t}]"));
        }
    }
}

crate::backend_tests!(every_reference_problem_is_reproduced_by_each_path);
