//! Validation during training: held-out tasks scored at every checkpoint, the best
//! checkpoint kept beside the last, a resumed run's validations continued, and the
//! flags' errors.

use std::path::Path;

use super::train::{maml, ok, tmp};

fn zip() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data-omniglot/images.zip")
        .display()
        .to_string()
}

/// Greek for training, Latin held out: 3-way 1-shot with one query image per class, 10
/// held-out tasks (30 query images), a checkpoint every 2 steps; SGD, whose resumed
/// steps equal the uninterrupted ones (Adam's moments restart on resume). `val`, when
/// given, replaces the validation flags.
fn train(out: &str, steps: &str, val: &[&str]) -> std::process::Output {
    let zip = zip();
    let mut args = super::images::TRAIN.to_vec();
    args.extend([
        "--model",
        "conv4",
        "--ways",
        "3",
        "--meta-optimizer",
        "sgd",
        "--meta-lr",
        "0.5",
        "--data",
        &zip,
        "--alphabets",
        "Greek",
        "--meta-steps",
        steps,
        "--out",
        out,
    ]);
    match val {
        [] => args.extend(["--val-alphabets", "Latin", "--val-tasks", "10"]),
        val => args.extend(val),
    }
    maml(&args)
}

/// The rows of a `validation.csv`: step, loss, accuracy.
fn rows(dir: &Path) -> Vec<(usize, f64, f64)> {
    let text = std::fs::read_to_string(dir.join("validation.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,val_loss,val_accuracy"));
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 3, "{line}");
            (
                cells[0].parse().unwrap(),
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
            )
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn held_out_tasks_are_scored_at_every_checkpoint_and_the_best_is_kept() {
    let dir = tmp("validation");
    let out = dir.to_str().unwrap();
    let run = train(out, "6", &[]);
    ok(&run);
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let rows = rows(&dir);
    let steps: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(steps, [0, 2, 4, 6], "a validation at every checkpoint");
    for &(_, loss, accuracy) in &rows {
        // Cross-entropy of 3 classes near chance, and a share of the 30 query images.
        assert!(loss.is_finite() && loss > 0.0 && loss < 5.0, "{rows:?}");
        assert!(
            (0..=30).any(|k| (accuracy - k as f64 / 30.0).abs() < 1e-6),
            "{rows:?}"
        );
    }
    // The best is the first of the highest accuracies, and best.json is its checkpoint.
    let top = rows.iter().map(|r| r.2).fold(f64::MIN, f64::max);
    let best = rows.iter().find(|r| r.2 == top).unwrap();
    let kept = json(&dir.join("best.json"));
    assert_eq!(kept["step"], best.0, "{rows:?}");
    assert_eq!(kept["format"], "maml-burn checkpoint v3");
    assert_eq!(summary["best_validation"]["step"], best.0, "{summary}");
    if best.0 == 6 {
        assert_eq!(kept["model"], json(&dir.join("checkpoint.json"))["model"]);
    }
    let config = json(&dir.join("config.json"));
    assert_eq!(config["validation"]["num_tasks"], 10);
    assert_eq!(config["validation"]["tasks"]["alphabets"][0], "Latin");
    assert_eq!(
        config["validation"]["tasks"]["shift"],
        serde_json::Value::Null
    );
    // Training and validation accuracy in one plot.
    let svg = std::fs::read_to_string(dir.join("accuracy.svg")).unwrap();
    assert!(svg.contains("training tasks") && svg.contains("10 held-out tasks"));

    // The best checkpoint evaluates like any other.
    let eval = maml(&[
        "eval",
        dir.join("best.json").to_str().unwrap(),
        "--data",
        &zip(),
        "--alphabets",
        "Latin",
        "--rotations",
        "--num-tasks",
        "5",
        "--backend",
        "ndarray",
        "--json",
    ]);
    ok(&eval);

    // Four steps and a resume to six give the same validations.
    let resumed = tmp("validation-resumed");
    let again = resumed.to_str().unwrap();
    ok(&train(again, "4", &[]));
    ok(&maml(&[
        "train",
        "--resume",
        "--meta-steps",
        "6",
        "--out",
        again,
        "--backend",
        "ndarray",
    ]));
    assert_eq!(
        std::fs::read_to_string(resumed.join("validation.csv")).unwrap(),
        std::fs::read_to_string(dir.join("validation.csv")).unwrap()
    );
    assert_eq!(json(&resumed.join("best.json"))["step"], best.0);
}

#[test]
fn bad_validation_flags_are_refused_with_the_value_named() {
    let dir = tmp("validation-bad");
    let out = dir.to_str().unwrap();
    let fails = |run: std::process::Output, wanted: &str| {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{wanted}: succeeded");
        assert!(stderr.contains(wanted), "{wanted}: {stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    fails(
        train(out, "1", &["--val-alphabets", "Greek"]),
        "validation alphabet = Greek",
    );
    fails(
        train(out, "1", &["--val-alphabets", "Latin", "--val-tasks", "0"]),
        "num_tasks = 0",
    );
    fails(
        train(out, "1", &["--val-alphabets", "Latin,Klingon"]),
        "Klingon",
    );
    fails(
        train(
            out,
            "1",
            &[
                "--val-data",
                "/nonexistent/held-out",
                "--val-alphabets",
                "Latin",
            ],
        ),
        "/nonexistent/held-out",
    );
    fails(
        maml(&[
            "train",
            "--family",
            "sinusoid",
            "--model",
            "mlp",
            "--val-alphabets",
            "Latin",
            "--out",
            out,
        ]),
        "--family omniglot",
    );
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/public-000.json");
    fails(
        maml(&[
            "train",
            "--tasks",
            tasks.to_str().unwrap(),
            "--val-tasks",
            "5",
            "--out",
            out,
        ]),
        "not a fixed task set",
    );
    assert!(!dir.join("best.json").exists());
}
