//! The closed form against the shared reference answers (PyTorch float64, cross-checked
//! by JAX): an independent check that needs no autodiff and no backend.

use std::path::{Path, PathBuf};

use maml_data::closed_form;
use maml_data::problem::Answer;
use maml_data::problem::Problem;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

#[test]
fn closed_form_reproduces_every_reference_problem_to_1e9() {
    let mut checked = 0;
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".expected.json") else {
            continue;
        };
        let problem = Problem::load(data_dir().join(format!("{stem}.json"))).unwrap();
        let expected = Answer::load(data_dir().join(&name))
            .unwrap()
            .to_linear()
            .expect("a version-1 answer");
        let answer = closed_form::meta_gradient(
            &problem.linear_weights().expect("a version-1 problem"),
            &problem.tasks,
            &problem.adapt_config(),
        );
        let scale = expected.meta_grad.max_abs();
        assert!(
            (answer.meta_loss - expected.meta_loss).abs() <= 1e-9 * expected.meta_loss.abs(),
            "{stem}: meta_loss {} vs {}",
            answer.meta_loss,
            expected.meta_loss
        );
        assert!(
            answer.meta_grad.max_abs_diff(&expected.meta_grad) <= 1e-9 * scale,
            "{stem}: meta_grad {:?} vs {:?}",
            answer.meta_grad,
            expected.meta_grad
        );
        for (a, e) in answer.fast_weights.iter().zip(&expected.fast_weights) {
            assert!(
                a.max_abs_diff(e) <= 1e-9 * e.max_abs(),
                "{stem}: fast weights"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 12, "the 12 shared reference problems");
}

/// The seed's manual formulas (shared/seed/ABOUT.md), with `x_s = 1`, `x_q = 2`,
/// `q = w1 x_q + b1`: first order `2 q x_q`; second order
/// `2 q x_q (1 - 2 x_s²) + 2 q (-2 x_s)`.
#[test]
fn closed_form_is_the_seeds_manual_formula_for_the_1x1_case() {
    for (w0, second) in [
        (-1.9347891807556152, false),
        (-0.7597505450248718, true),
        (0.37, true),
    ] {
        let (xs, xq) = (1.0, 2.0);
        let (gw, gb) = (2.0 * w0 * xs * xs, 2.0 * w0 * xs); // support gradient of (w x)^2, b0 = 0
        let (w1, b1) = (w0 - gw, -gb);
        let q = w1 * xq + b1;
        let expected = if second {
            2.0 * q * xq * (1.0 - 2.0 * xs * xs) + 2.0 * q * (-2.0 * xs)
        } else {
            2.0 * q * xq
        };
        let problem = Problem::from_json(
            &format!(
                r#"{{"weight": [[{w0}]], "bias": [0.0], "inner_lr": 1.0, "inner_steps": 1,
                   "order": "{}", "loss": "sse",
                   "tasks": [{{"support": {{"x": [[1.0]]}}, "query": {{"x": [[2.0]]}}}}]}}"#,
                if second { "second" } else { "first" }
            ),
            "inline",
        )
        .unwrap();
        let answer = closed_form::meta_gradient(
            &problem.linear_weights().expect("a version-1 problem"),
            &problem.tasks,
            &problem.adapt_config(),
        );
        let got = answer.meta_grad.weight[0][0];
        assert!(
            (got - expected).abs() <= 1e-12 * expected.abs(),
            "{got} vs {expected}"
        );
    }
}
