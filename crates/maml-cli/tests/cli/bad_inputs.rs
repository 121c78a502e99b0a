//! The bad-input corpus (tests/bad-inputs, written by scripts/gen-bad-inputs.py): every
//! malformed problem, checkpoint and configuration gets a non-zero exit, one `error:`
//! line naming the problem, and no panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-inputs")
}

fn run(file: &str, out: &Path) -> std::process::Output {
    let path = corpus().join(file);
    let path = path.to_str().unwrap();
    let args: Vec<&str> = match file.split('/').next().unwrap() {
        "problems" => vec!["grad", path],
        "checkpoints" => vec!["eval", path, "--num-tasks", "2"],
        "configs" => vec!["train", "--config", path, "--out", out.to_str().unwrap()],
        other => panic!("unknown corpus folder {other}"),
    };
    Command::new(env!("CARGO_BIN_EXE_maml"))
        .args(&args)
        .output()
        .unwrap()
}

#[test]
fn every_bad_input_gets_a_clear_error_and_no_panic() {
    let manifest = std::fs::read_to_string(corpus().join("expected.tsv")).unwrap();
    let out = crate::train::tmp("bad-inputs");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let (file, expected) = line.split_once('\t').expect("file<TAB>text");
        count += 1;
        let output = run(file, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("");
        let ok = !output.status.success()
            && first.starts_with("error: ")
            && first.contains(expected)
            && !stderr.contains("panicked")
            && !stderr.contains("RUST_BACKTRACE");
        if !ok {
            failures.push(format!(
                "{file}: exit {:?}, stderr {stderr:?}, expected {expected:?}",
                output.status.code()
            ));
        }
    }
    assert!(count >= 60, "the corpus has {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn missing_files_and_bad_flags_are_clear_errors() {
    let maml = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maml"))
            .args(args)
            .output()
            .unwrap()
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["grad", "/nonexistent/problem.json"],
            "error: cannot read /nonexistent/problem.json",
        ),
        (
            &["eval", "/nonexistent/checkpoint.json"],
            "error: cannot read /nonexistent/checkpoint.json",
        ),
        (
            &["grad", "x.json", "--backend", "cuda"],
            "unknown backend \"cuda\"",
        ),
        (
            &["grad", "x.json", "--precision", "f16"],
            "unknown precision \"f16\"",
        ),
        (&["train", "--order", "third"], "unknown order \"third\""),
        (&["train", "--loss", "mae"], "unknown loss \"mae\""),
        (
            &["train", "--meta-optimizer", "rmsprop"],
            "unknown meta-optimizer \"rmsprop\"",
        ),
        (
            &["train", "--inner-lr", "-1", "--out", "/tmp/maml-never"],
            "invalid inner_lr = -1: must be positive",
        ),
        (
            &["train", "--meta-lr", "inf", "--out", "/tmp/maml-never"],
            "invalid meta_lr = inf: must be a finite number",
        ),
        (&["train", "--threads", "0"], "invalid thread count \"0\""),
    ];
    for (args, expected) in cases {
        let out = maml(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should contain {expected:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
