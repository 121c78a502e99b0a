//! Every shared version-3 reference problem (tests/data-conv, copied from
//! shared/reference/problems-conv: conv2d, batch norm, max pooling, flatten or spatial
//! mean, cross-entropy and squared losses, Meta-SGD, ragged tasks, two of them the MAML
//! paper's Omniglot network on 28x28 images), answered by the layered model on each
//! backend and compared with PyTorch float64.

use burn::prelude::Backend;
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::solve::solve;

use crate::common::{assert_answer_close, is_cubecl, tolerance};

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data-conv")
}

/// The problems' names, sorted.
fn conv_problems() -> Vec<String> {
    crate::common::answered_problems(&data_dir(), 12, "shared version-3 problems")
}

/// Meta-loss, meta-gradient, Meta-SGD step-size gradient and fast weights within 1e-4
/// (f32) or 1e-9 (f64) of the largest entry of the PyTorch float64 answers.
///
/// On wgpu the tests run on lavapipe (a software Vulkan device) here, where all twelve
/// take about 260 s; three small ones run there, chosen to cover max pooling with a
/// leftover row and column (which once gave wrong values on wgpu only), Meta-SGD, batch
/// norm, flatten, first order and cross-entropy: 001, 006 and 008. `maml check` runs any
/// of them on wgpu.
fn every_conv_reference_problem_is_reproduced<B: Backend>(device: &B::Device) {
    for_each_conv_problem::<B>(device, "", |problem| solve::<B>(problem, device).unwrap());
}

/// Answers every problem by `answer` (on wgpu only 001, 006 and 008, see above) and
/// compares with the reference answer (`what` is appended to the problem's name).
pub(crate) fn for_each_conv_problem<B: Backend>(
    device: &B::Device,
    what: &str,
    answer: impl Fn(&Problem) -> Answer,
) {
    let tol = tolerance::<B>();
    let on_wgpu = is_cubecl::<B>(device);
    for name in conv_problems() {
        if on_wgpu && !["-001", "-006", "-008"].iter().any(|s| name.ends_with(s)) {
            continue;
        }
        let problem = Problem::load(data_dir().join(format!("{name}.json"))).unwrap();
        let expected = Answer::load(data_dir().join(format!("{name}.expected.json"))).unwrap();
        assert_answer_close(&answer(&problem), &expected, tol, &format!("{name}{what}"));
    }
}

crate::backend_tests!(every_conv_reference_problem_is_reproduced);
