//! Every shared version-2 reference problem (tests/data-mlp, copied from
//! shared/reference/problems-mlp: MLPs, Meta-SGD, cross-entropy, ragged tasks), answered
//! by the model-agnostic core on each backend and compared with PyTorch float64.

use burn::prelude::Backend;
use maml_burn::backend::on_cpu_pool;
use maml_burn::maml_core::GradientPath;
use maml_burn::maml_core::data::layers::LayeredWeights;
use maml_burn::maml_core::model::mlp::MlpWeights;
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::problem::ProblemFormat;
use maml_burn::maml_data::solve::solve_by;

use crate::common::{assert_close, is_cubecl, tolerance};

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data-mlp")
}

/// `actual` in the layout of the problem's layer list (`{}` for the activations),
/// `expected` in a version-2 answer's (the linear layers only).
fn assert_mlp_close(actual: &LayeredWeights, expected: &LayeredWeights, tol: f64, what: &str) {
    let sizes = |w: &LayeredWeights| MlpWeights::from_layered(w).map(|m| m.sizes());
    assert_eq!(sizes(actual), sizes(expected), "{what}: layer sizes");
    let scale = expected.max_abs().max(1e-12);
    let diff = actual.max_abs_diff(expected);
    assert!(
        diff <= tol * scale,
        "{what}: max |difference| {diff:e} > {tol:e} * {scale:e}"
    );
}

/// Meta-loss, meta-gradient, Meta-SGD step-size gradient and fast weights within 1e-4
/// (f32) or 1e-9 (f64) of the largest entry of the PyTorch float64 answers, by both
/// gradient paths (hand-derived back-propagation, the MLP's default, and nested autodiff,
/// every other model's), and on the CPU backends by the default path on a two-thread
/// pool, where the tasks are split over the threads.
///
/// The split is a CPU feature (a GPU backend's jobs are not run on a CPU pool). Forced
/// on wgpu, the shards' smaller shapes made cubecl 0.10's matmul autotuner reuse a kernel
/// tuned for another shape of the same key, which panicked ("Lhs dimension k=5 must be
/// a multiple of plane size 8", lavapipe).
fn every_mlp_reference_problem_is_reproduced_by_each_path_and_on_two_threads<B: Backend>(
    device: &B::Device,
) {
    for path in [GradientPath::Auto, GradientPath::Autodiff] {
        reproduce_every_mlp_reference_problem::<B>(path, device);
    }
    if !is_cubecl::<B>(device) {
        on_cpu_pool(2, || {
            reproduce_every_mlp_reference_problem::<B>(GradientPath::Auto, device)
        })
        .expect("a two-thread pool can be built");
    }
}

fn reproduce_every_mlp_reference_problem<B: Backend>(path: GradientPath, device: &B::Device) {
    let tol = tolerance::<B>();
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data-mlp exists in the repository")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".expected.json")?.to_string())
        })
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        12,
        "the 12 shared version-2 problems: {names:?}"
    );
    for name in names {
        let problem = Problem::load(data_dir().join(format!("{name}.json"))).unwrap();
        assert_eq!(
            problem.format,
            ProblemFormat::Mlp,
            "{name}: a version-2 file"
        );
        let expected = Answer::load(data_dir().join(format!("{name}.expected.json"))).unwrap();
        let answer = solve_by::<B>(&problem, path, device).unwrap();
        let name = format!("{name} ({path})");
        assert_close(
            answer.meta_loss,
            expected.meta_loss,
            tol,
            &format!("{name} meta_loss"),
        );
        assert_mlp_close(
            &answer.meta_grad,
            &expected.meta_grad,
            tol,
            &format!("{name} meta_grad"),
        );
        match (&answer.inner_lr_grad, &expected.inner_lr_grad) {
            (Some(a), Some(e)) => assert_mlp_close(a, e, tol, &format!("{name} inner_lr_grad")),
            (None, None) => {}
            (a, e) => panic!(
                "{name}: inner_lr_grad {} but expected {}",
                a.is_some(),
                e.is_some()
            ),
        }
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
            assert_mlp_close(a, e, tol, &format!("{name} fast_weights[{t}]"));
        }
    }
}

crate::backend_tests!(every_mlp_reference_problem_is_reproduced_by_each_path_and_on_two_threads);
