//! Helpers shared by the backend tests (both test binaries).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use maml_backends::{WgpuDevice, wgpu_device};
use maml_burn::maml_core::data::LinearAnswer;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::layers::LayeredWeights;
use maml_burn::maml_core::model::mlp::Mlp;
use maml_burn::maml_core::{AdaptConfig, GradientPath, Loss, SecondOrder, SetData, TaskData};
use maml_burn::maml_data::model_trainer::ModelTrainer;
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::run::TrainConfig;
use maml_burn::maml_data::solve::solve_by;
use maml_burn::maml_data::stored::StoredModel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod autotune;
pub use autotune::seed_autotune_cache;

/// The wgpu device, `None` (skip) when there is no adapter and `MAML_REQUIRE_WGPU` is not
/// `1`; panics when it is. Seeds the autotune cache first ([`seed_autotune_cache`]).
pub fn wgpu() -> Option<WgpuDevice> {
    match wgpu_device() {
        Ok(device) => {
            seed_autotune_cache();
            Some(device)
        }
        Err(err) if std::env::var("MAML_REQUIRE_WGPU").as_deref() == Ok("1") => {
            panic!("MAML_REQUIRE_WGPU=1 but {err}")
        }
        Err(err) => {
            eprintln!("skipping a wgpu test: {err}");
            None
        }
    }
}

/// Whether `B` computes in 64-bit floats on its default device (Flex chooses its float
/// type at run time, so the element type alone does not tell).
pub fn is_f64<B: Backend>() -> bool {
    burn::tensor::get_device_settings::<B>(&Default::default()).float_dtype
        == burn::tensor::FloatDType::F64
}

/// Whether `B` is a CubeCL (GPU) backend, such as wgpu: its name is `cubecl<...>`.
pub fn is_cubecl<B: Backend>(device: &B::Device) -> bool {
    B::name(device).starts_with("cubecl")
}

/// The reference tolerance of the issue: relative to the largest entry, 1e-4 in f32 and
/// 1e-9 in f64.
pub fn tolerance<B: Backend>() -> f64 {
    if is_f64::<B>() { 1e-9 } else { 1e-4 }
}

/// `tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// The names of the reference problems (`NAME.json` with a `NAME.expected.json`).
pub fn reference_problems() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data exists in the repository")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".expected.json")?;
            Some(stem.to_string())
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 12,
        "expected the 12 shared reference problems, found {names:?}"
    );
    names
}

/// The names, sorted, of the problems in `dir` that have an answer (`NAME.json` and
/// `NAME.expected.json`), which must be `count` (`what` names the set in the message).
pub fn answered_problems(dir: &Path, count: usize, what: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is in the repository: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".expected.json")?.to_string())
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), count, "the {count} {what}: {names:?}");
    names
}

/// Asserts `|actual - expected| <= tol * scale` entry-wise, where `scale` is the largest
/// absolute entry of `expected` (at least 1e-12).
pub fn assert_weights_close(
    actual: &LinearWeights,
    expected: &LinearWeights,
    tol: f64,
    what: &str,
) {
    assert_eq!(actual.d_out(), expected.d_out(), "{what}: out");
    assert_eq!(actual.d_in(), expected.d_in(), "{what}: in");
    let scale = expected.max_abs().max(1e-12);
    let diff = actual.max_abs_diff(expected);
    assert!(
        diff <= tol * scale,
        "{what}: max |difference| {diff:e} > {tol:e} * {scale:e}\n actual   {actual:?}\n expected {expected:?}"
    );
}

/// Asserts that two layer lists' weights differ by at most `tol` times the largest entry
/// of `expected` (at least 1e-12).
pub fn assert_layers_close(
    actual: &LayeredWeights,
    expected: &LayeredWeights,
    tol: f64,
    what: &str,
) {
    let scale = expected.max_abs().max(1e-12);
    let diff = actual.max_abs_diff(expected);
    assert!(
        diff <= tol * scale,
        "{what}: max |difference| {diff:e} > {tol:e} * {scale:e}"
    );
}

/// Asserts that an answer's meta-loss, meta-gradient, Meta-SGD step-size gradient and
/// fast weights are within `tol` of `expected`'s (relative to the largest entry of each).
pub fn assert_answer_close(actual: &Answer, expected: &Answer, tol: f64, what: &str) {
    assert_close(
        actual.meta_loss,
        expected.meta_loss,
        tol,
        &format!("{what} meta_loss"),
    );
    assert_layers_close(
        &actual.meta_grad,
        &expected.meta_grad,
        tol,
        &format!("{what} meta_grad"),
    );
    match (&actual.inner_lr_grad, &expected.inner_lr_grad) {
        (Some(a), Some(e)) => assert_layers_close(a, e, tol, &format!("{what} inner_lr_grad")),
        (None, None) => {}
        (a, e) => panic!(
            "{what}: inner_lr_grad {} but expected {}",
            a.is_some(),
            e.is_some()
        ),
    }
    assert_eq!(
        actual.fast_weights.len(),
        expected.fast_weights.len(),
        "{what}: tasks"
    );
    for (t, (a, e)) in actual
        .fast_weights
        .iter()
        .zip(&expected.fast_weights)
        .enumerate()
    {
        assert_layers_close(a, e, tol, &format!("{what} fast_weights[{t}]"));
    }
}

/// Asserts `|actual - expected| <= tol * max(|expected|, 1e-12)`.
pub fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    let scale = expected.abs().max(1e-12);
    assert!(
        (actual - expected).abs() <= tol * scale,
        "{what}: {actual} vs {expected} (|difference| {:e} > {tol:e} * {scale:e})",
        (actual - expected).abs()
    );
}

/// A random problem shape: `in` 1..=8, `out` 1..=3.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub d_in: usize,
    pub d_out: usize,
    pub tasks: usize,
}

/// Random tasks with `N(0, 1)`-ish features, random targets (or none), and support and
/// query sizes that differ between tasks.
pub fn random_tasks(rng: &mut StdRng, shape: Shape) -> Vec<TaskData> {
    let set = |rng: &mut StdRng, n: usize, targets: bool| SetData {
        x: (0..n)
            .map(|_| {
                (0..shape.d_in)
                    .map(|_| rng.random_range(-1.5..1.5))
                    .collect()
            })
            .collect(),
        y: targets.then(|| {
            (0..n)
                .map(|_| {
                    (0..shape.d_out)
                        .map(|_| rng.random_range(-2.0..2.0))
                        .collect()
                })
                .collect()
        }),
    };
    let targets = rng.random_bool(0.8);
    (0..shape.tasks)
        .map(|_| {
            let ns = rng.random_range(1..=6);
            let nq = rng.random_range(1..=6);
            TaskData {
                support: set(rng, ns, targets),
                query: set(rng, nq, targets),
            }
        })
        .collect()
}

/// Random initial weights.
pub fn random_weights(rng: &mut StdRng, shape: Shape) -> LinearWeights {
    let weight: Vec<f64> = (0..shape.d_in * shape.d_out)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let bias: Vec<f64> = (0..shape.d_out)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    LinearWeights::from_flat(&weight, &bias, shape.d_in)
}

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// An inner learning rate small enough for stable adaptation on the random tasks:
/// `sse` sums over up to 6 rows of up to 3 outputs, so it takes a smaller step.
pub fn stable_inner_lr(rng: &mut StdRng, loss: Loss) -> f64 {
    match loss {
        Loss::Sse => rng.random_range(0.005..0.05),
        Loss::Mse | Loss::CrossEntropy => rng.random_range(0.02..0.3),
    }
}

/// The linear model's meta-gradient of `init` on `tasks` by `path`, in the answer layout.
pub fn linear_answer<B: Backend>(
    init: &LinearWeights,
    tasks: &[TaskData],
    config: &AdaptConfig,
    path: GradientPath,
    device: &B::Device,
) -> LinearAnswer {
    let problem = Problem::linear(init, tasks.to_vec(), config);
    solve_by::<B>(&problem, path, device)
        .expect("a valid linear problem")
        .to_linear()
        .expect("the linear model's answer has its layout")
}

/// The linear model's trainer (an MLP of one layer) for `config`, from `init` or from
/// Kaiming-normal weights.
pub type LinearTrainer<B> = ModelTrainer<B, Mlp<SecondOrder<B>>>;

/// A linear trainer for `config`, starting from `init` (or Kaiming-normal weights).
pub fn linear_trainer<B: Backend>(
    config: TrainConfig,
    init: Option<LinearWeights>,
    device: &B::Device,
) -> LinearTrainer<B> {
    let family = config.tasks.family().expect("a valid task source");
    let init = init.map(|w| (StoredModel::linear(w), None, None));
    ModelTrainer::new(config, family, init, 0, device).expect("a valid training run")
}

/// The linear trainer's current initial weights.
pub fn linear_weights<B: Backend>(trainer: &LinearTrainer<B>) -> LinearWeights {
    let weights = trainer.weights();
    weights.as_linear().cloned().expect("an MLP of one layer")
}
