//! `maml grad` and `maml check` end to end: the binary reproduces every shared reference
//! problem (tests/data) on ndarray in f32 and f64 and on wgpu in f32.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use maml_burn::maml_data::problem::Answer;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn maml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maml"))
        .args(args)
        .output()
        .expect("the maml binary runs")
}

fn problems() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".expected.json")?.to_string())
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 12);
    names
}

fn wgpu_available() -> bool {
    match maml_backends::wgpu_device() {
        Ok(_) => {
            // The `maml` processes run in this directory and read its autotune cache.
            crate::autotune::seed_autotune_cache();
            true
        }
        Err(err) if std::env::var("MAML_REQUIRE_WGPU").as_deref() == Ok("1") => {
            panic!("MAML_REQUIRE_WGPU=1 but {err}")
        }
        Err(err) => {
            eprintln!("skipping wgpu: {err}");
            false
        }
    }
}

fn check_grad(backend: &str, precision: &str, tol: f64) {
    for name in problems() {
        let problem = data_dir().join(format!("{name}.json"));
        let out = maml(&[
            "grad",
            problem.to_str().unwrap(),
            "--backend",
            backend,
            "--precision",
            precision,
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Answer = serde_json::from_slice(&out.stdout).expect("stdout is answer JSON");
        let expected = Answer::load(data_dir().join(format!("{name}.expected.json"))).unwrap();
        let what = format!("{name} on {backend} {precision}");
        assert!(
            (answer.meta_loss - expected.meta_loss).abs() <= tol * expected.meta_loss.abs(),
            "{what}: meta_loss {} vs {}",
            answer.meta_loss,
            expected.meta_loss
        );
        let scale = expected.meta_grad.max_abs();
        assert!(
            answer.meta_grad.max_abs_diff(&expected.meta_grad) <= tol * scale,
            "{what}: meta_grad {:?} vs {:?}",
            answer.meta_grad,
            expected.meta_grad
        );
        for (a, e) in answer.fast_weights.iter().zip(&expected.fast_weights) {
            assert!(
                a.max_abs_diff(e) <= tol * e.max_abs(),
                "{what}: fast weights"
            );
        }
    }
}

#[test]
fn grad_reproduces_every_reference_problem_on_ndarray_f32() {
    check_grad("ndarray", "f32", 1e-4);
}

#[test]
fn grad_reproduces_every_reference_problem_on_ndarray_f64() {
    check_grad("ndarray", "f64", 1e-9);
}

#[test]
fn grad_reproduces_every_reference_problem_on_wgpu_f32() {
    if wgpu_available() {
        check_grad("wgpu", "f32", 1e-4);
    }
}

#[test]
fn check_passes_against_closed_form_and_expected_answer() {
    let problem = data_dir().join("public-005.json");
    let expected = data_dir().join("public-005.expected.json");
    let out = maml(&[
        "check",
        problem.to_str().unwrap(),
        "--expected",
        expected.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_fails_against_a_wrong_expected_answer() {
    // The second-order problem checked against the first-order seed answer: shapes match
    // (1x1, one task) but the meta-gradients differ (-24.3 vs 30.96).
    let problem = data_dir().join("seed-second-order.json");
    let wrong = data_dir().join("seed-first-order.expected.json");
    let out = maml(&[
        "check",
        problem.to_str().unwrap(),
        "--expected",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("expected answer"),
        "{stderr}"
    );
}

#[test]
fn f64_on_wgpu_is_a_clear_error() {
    let problem = data_dir().join("seed-first-order.json");
    let out = maml(&[
        "grad",
        problem.to_str().unwrap(),
        "--backend",
        "wgpu",
        "--precision",
        "f64",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: precision f64 is not supported on the wgpu backend"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn conv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data-conv")
}

#[test]
fn check_reads_conv_problems_against_the_answer_and_finite_differences() {
    // A second-order problem: finite differences check its meta-gradient in f64.
    let problem = conv_dir().join("public-conv-009.json");
    let expected = conv_dir().join("public-conv-009.expected.json");
    for precision in ["f32", "f64"] {
        let out = maml(&[
            "check",
            problem.to_str().unwrap(),
            "--expected",
            expected.to_str().unwrap(),
            "--backend",
            "ndarray",
            "--precision",
            precision,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // f64 adds the finite-difference comparison.
        let comparisons = report["comparisons"].as_array().unwrap().len();
        assert_eq!(
            comparisons,
            if precision == "f64" { 2 } else { 1 },
            "{report}"
        );
    }
}

#[test]
fn check_fails_a_conv_problem_against_another_problems_answer() {
    let problem = conv_dir().join("public-conv-008.json");
    let wrong = conv_dir().join("public-conv-004.expected.json");
    let out = maml(&[
        "check",
        problem.to_str().unwrap(),
        "--expected",
        wrong.to_str().unwrap(),
        "--backend",
        "ndarray",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
