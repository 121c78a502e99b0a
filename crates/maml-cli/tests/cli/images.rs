//! `maml train --family omniglot --model conv4` and both forms of `maml eval` on images,
//! end to end on the test subset of Omniglot (ndarray), and their errors.

use std::path::Path;

use super::train::{maml, ok, tmp};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data-omniglot")
        .join(name)
        .display()
        .to_string()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    ok(out);
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn is_share_of(value: f64, n: usize) -> bool {
    (0..=n).any(|k| (value - k as f64 / n as f64).abs() < 1e-6)
}

pub(crate) const TRAIN: &[&str] = &[
    "train",
    "--family",
    "omniglot",
    "--rotations",
    "--queries",
    "1",
    "--filters",
    "4",
    "--meta-batch",
    "2",
    "--checkpoint-every",
    "2",
    "--backend",
    "ndarray",
];

#[test]
fn conv4_trains_on_omniglot_resumes_and_evaluates_on_tasks_and_runs() {
    let dir = tmp("omniglot");
    let out = dir.to_str().unwrap();
    let zip = data("images.zip");
    let mut args = TRAIN.to_vec();
    args.extend([
        "--model", "conv4", "--ways", "3", "--shots", "1", "--shift", "1",
    ]);
    args.extend(["--data", &zip, "--meta-steps", "4", "--out", out]);
    ok(&maml(&args));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["tasks"]["shift"], 1, "{config}");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["format"], "maml-burn checkpoint v3");
    assert_eq!(checkpoint["step"], 4);
    let layers = checkpoint["model"]["layered"]["layers"].as_array().unwrap();
    // 4 blocks of conv, batch norm, ReLU; the spatial mean; the head of 3 classes.
    assert_eq!(layers.len(), 14);
    assert_eq!(layers[13]["weight"].as_array().unwrap().len(), 3);
    assert_eq!(layers[0]["weight"].as_array().unwrap().len(), 4);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("step,meta_loss,query_loss_before,query_loss_after,query_accuracy")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let accuracy: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
        // Two tasks of three query images: a share of six.
        assert!(is_share_of(accuracy, 6), "{row}");
    }

    ok(&maml(&[
        "train",
        "--resume",
        "--meta-steps",
        "6",
        "--out",
        out,
    ]));
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(resumed["step"], 6);

    let checkpoint = dir.join("checkpoint.json");
    let checkpoint = checkpoint.to_str().unwrap();
    let images = data("images");
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", checkpoint, "--json", "--backend", "ndarray"];
        args.extend(extra);
        json(&maml(&args))
    };
    let report = eval(&[
        "--data",
        &images,
        "--alphabets",
        "Latin",
        "--num-tasks",
        "7",
        "--inner-steps",
        "2",
    ]);
    let accuracy = &report["accuracy"];
    assert_eq!(accuracy["tasks"], 7);
    assert_eq!(report["inner_steps"], 2);
    let mean = accuracy["mean"].as_f64().unwrap();
    assert!(is_share_of(mean, 21), "mean accuracy {mean}");
    assert!(accuracy["ci95"].as_f64().unwrap() >= 0.0);
    let one = eval(&["--data", &images, "--num-tasks", "1"]);
    assert_eq!(
        one["accuracy"]["ci95"].as_f64(),
        Some(0.0),
        "one task: no spread"
    );

    let runs = eval(&["--runs", &data("runs")]);
    let run = &runs["runs"][0];
    assert_eq!(run["run"], "run01");
    let error = run["error"].as_f64().unwrap();
    assert!(is_share_of(error, 3), "error {error}");
    assert_eq!(runs["mean_error"].as_f64(), Some(error));

    // A run of two classes for a checkpoint of three ways: refused, both counts named.
    let two = dir.join("two-way");
    let run01 = Path::new(&data("runs")).join("run01");
    for sub in ["training", "test"] {
        std::fs::create_dir_all(two.join("run01").join(sub)).unwrap();
    }
    for file in [
        "training/class01.png",
        "training/class02.png",
        "test/item01.png",
        "test/item02.png",
    ] {
        std::fs::copy(run01.join(file), two.join("run01").join(file)).unwrap();
    }
    std::fs::write(
        two.join("run01/class_labels.txt"),
        "run01/test/item01.png run01/training/class01.png\n\
         run01/test/item02.png run01/training/class02.png\n",
    )
    .unwrap();
    let refused = maml(&["eval", checkpoint, "--runs", two.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a 2-way run was evaluated");
    assert!(
        stderr.contains("run01 has 2 classes") && stderr.contains("trained for 3 ways"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_image_runs_are_refused_with_the_value_named() {
    let dir = tmp("omniglot-bad");
    let out = dir.to_str().unwrap();
    let images = data("images");
    let fails = |extra: &[&str], wanted: &str| {
        let mut args = TRAIN.to_vec();
        args.extend(["--meta-steps", "1", "--out", out]);
        args.extend(extra);
        let run = maml(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(wanted), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let conv = ["--model", "conv4", "--data", &images];
    fails(&["--model", "conv4"], "--data");
    fails(
        &["--model", "conv4", "--data", "/nonexistent/omniglot"],
        "/nonexistent/omniglot",
    );
    fails(
        &[&conv[..], &["--ways", "30"]].concat(),
        "30 classes per task",
    );
    fails(
        &[&conv[..], &["--shots", "5"]].concat(),
        "fewer than shots + queries = 6",
    );
    fails(
        &[&conv[..], &["--alphabets", "Klingon"]].concat(),
        "Klingon",
    );
    fails(
        &[&conv[..], &["--loss", "mse"]].concat(),
        "--loss cross_entropy",
    );
    fails(&["--model", "mlp", "--data", &images], "conv4");
    // Refused before the run folder gets a configuration.
    let _ = std::fs::remove_file(dir.join("config.json"));
    fails(&[&conv[..], &["--shift", "28"]].concat(), "shift = 28");
    assert!(
        !dir.join("config.json").exists(),
        "a refused run wrote its config"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
