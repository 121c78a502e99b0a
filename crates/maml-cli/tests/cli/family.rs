//! MAML's family on `maml train` and `maml eval` (docs/family.md), end to end (ndarray):
//! every flag reaches the saved configuration and checkpoint, a run resumes with its
//! learned per-step step sizes, evaluation adapts as the training did (with more test
//! steps than training steps), and the combinations that cannot work are refused.

use std::path::Path;

use super::train::{maml, ok, tmp};

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn omniglot(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data-omniglot")
        .join(name)
        .display()
        .to_string()
}

/// ANIL on an MLP with inner Adam, learned per-step sizes, the multi-step loss, derivative
/// order and cosine annealing: the configuration names each, the checkpoint holds the
/// `[K][P]` table (3 steps, 6 parameter tensors), resume continues, and `maml eval` with
/// five inner steps (two beyond the table) gives five finite curve points after the start.
#[test]
fn family_flags_reach_the_config_checkpoint_and_evaluation() {
    let dir = tmp("family-mlp");
    let out = dir.to_str().unwrap();
    let train = |steps: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--family",
            "blobs",
            "--model",
            "mlp",
            "--hidden",
            "8,8",
            "--in",
            "4",
            "--ways",
            "3",
            "--meta-batch",
            "4",
            "--inner-steps",
            "3",
            "--no-compare",
            "--baseline-steps",
            "0",
            "--backend",
            "ndarray",
            "--meta-steps",
            steps,
            "--out",
            out,
        ];
        args.extend(extra);
        maml(&args)
    };
    ok(&train(
        "4",
        &[
            "--algorithm",
            "anil",
            "--inner-optimizer",
            "adam",
            "--lslr",
            "--multi-step-loss",
            "3",
            "--first-order-until",
            "2",
            "--cosine-meta-lr",
        ],
    ));
    let config = read(&dir.join("config.json"));
    let adapt = &config["meta"]["adapt"];
    assert_eq!(adapt["inner_params"], serde_json::json!([4, 5]), "{config}");
    assert_eq!(adapt["inner_optimizer"]["type"], "adam");
    assert_eq!(adapt["per_step_lr"], true);
    assert_eq!(config["schedule"]["multi_step_loss_until"], 3);
    assert_eq!(config["schedule"]["first_order_until"], 2);
    assert!((config["schedule"]["cosine_min_lr"].as_f64().unwrap() - 1e-4).abs() < 1e-12);
    let checkpoint = read(&dir.join("checkpoint.json"));
    let table = checkpoint["step_table"]
        .as_array()
        .expect("the per-step table");
    assert_eq!(table.len(), 3);
    assert!(table.iter().all(|row| row.as_array().unwrap().len() == 6));
    // ANIL: the body's columns (0..4) never move from --inner-lr's 0.1.
    let moved = |row: &serde_json::Value, p: usize| (row[p].as_f64().unwrap() - 0.1).abs() > 1e-6;
    assert!(
        table.iter().all(|row| (0..4).all(|p| !moved(row, p))),
        "{table:?}"
    );
    assert!(
        table.iter().any(|row| moved(row, 4)),
        "the head's sizes are learned: {table:?}"
    );
    ok(&maml(&[
        "train",
        "--resume",
        "--meta-steps",
        "6",
        "--out",
        out,
    ]));
    assert_eq!(read(&dir.join("checkpoint.json"))["step"], 6);
    let checkpoint = dir.join("checkpoint.json");
    let eval = maml(&[
        "eval",
        checkpoint.to_str().unwrap(),
        "--num-tasks",
        "6",
        "--inner-steps",
        "5",
        "--json",
        "--backend",
        "ndarray",
    ]);
    ok(&eval);
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let curve = report["maml"].as_array().expect("the adaptation curve");
    assert_eq!(curve.len(), 6, "{report}");
    assert!(
        curve.iter().all(|v| v.as_f64().unwrap().is_finite()),
        "{report}"
    );
}

/// `--recipe maml++` on conv4 (4 filters) and Omniglot's test subset: five inner steps
/// of 0.1, per-step batch norm (six sets), learned per-step sizes, all three schedules;
/// `maml eval` on held-out classes with seven inner steps.
#[test]
fn the_maml_plus_plus_recipe_trains_and_evaluates_conv4() {
    let dir = tmp("family-recipe");
    let out = dir.to_str().unwrap();
    let zip = omniglot("images.zip");
    ok(&maml(&[
        "train",
        "--family",
        "omniglot",
        "--data",
        &zip,
        "--model",
        "conv4",
        "--filters",
        "4",
        "--ways",
        "3",
        "--queries",
        "1",
        "--meta-batch",
        "2",
        "--meta-steps",
        "3",
        "--recipe",
        "maml++",
        "--backend",
        "ndarray",
        "--out",
        out,
    ]));
    let config = read(&dir.join("config.json"));
    assert_eq!(config["meta"]["adapt"]["inner_steps"], 5, "{config}");
    assert_eq!(config["meta"]["adapt"]["inner_lr"], 0.1);
    assert_eq!(config["model"]["per_step_bn"], 6);
    assert!(config["schedule"]["cosine_min_lr"].is_number());
    let checkpoint = read(&dir.join("checkpoint.json"));
    let layers = checkpoint["model"]["layered"]["layers"].as_array().unwrap();
    assert_eq!(layers[1]["per_step"], true);
    assert_eq!(layers[1]["weight"].as_array().unwrap().len(), 6);
    assert_eq!(checkpoint["step_table"].as_array().unwrap().len(), 5);
    let path = dir.join("checkpoint.json");
    let eval = maml(&[
        "eval",
        path.to_str().unwrap(),
        "--data",
        &zip,
        "--num-tasks",
        "4",
        "--inner-steps",
        "7",
        "--json",
        "--backend",
        "ndarray",
    ]);
    ok(&eval);
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let accuracy = report["accuracy"]
        .as_f64()
        .or(report["accuracy"]["mean"].as_f64());
    assert!(
        accuracy.is_some_and(|a| (0.0..=1.0).contains(&a)),
        "{report}"
    );
}

/// Combinations that cannot work: one `error:` line naming them, no panic.
#[test]
fn impossible_family_combinations_are_refused() {
    let dir = tmp("family-refused");
    let out = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--algorithm", "reptile", "--order", "second"],
            "Reptile is first order",
        ),
        (&["--per-step-bn"], "--per-step-bn needs a conv net"),
        (
            &["--multi-step-loss", "5", "--inner-steps", "1"],
            "needs at least two inner steps",
        ),
        (
            &["--lslr", "--meta-sgd"],
            "choose per-entry (meta_sgd) or per-step",
        ),
        (
            &[
                "--inner-optimizer",
                "momentum",
                "--inner-checkpoint-every",
                "2",
            ],
            "not combined with inner_checkpoint_every",
        ),
        (
            &["--inner-optimizer", "rmsprop"],
            "unknown inner optimizer \"rmsprop\"",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["train", "--meta-steps", "2", "--no-compare", "--out", out];
        args.extend(*flags);
        let output = maml(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?} succeeded");
        assert!(
            stderr.contains(expected)
                && stderr.starts_with("error")
                && !stderr.contains("panicked"),
            "{flags:?}: {stderr}"
        );
    }
}
