//! `maml train --inner-checkpoint-every` end to end (ndarray, f64): a checkpointed run
//! trains the same weights as an unchecked one, `auto` is recorded as ⌈√K⌉, and bad
//! values are refused with the value named.

use super::train::{maml, ok, tmp};

/// Every number in a JSON value, in document order.
fn numbers(value: &serde_json::Value, out: &mut Vec<f64>) {
    match value {
        serde_json::Value::Number(n) => out.push(n.as_f64().expect("a finite number")),
        serde_json::Value::Array(items) => items.iter().for_each(|v| numbers(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| numbers(v, out)),
        _ => {}
    }
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn checkpointed_training_gives_the_same_weights_and_bad_intervals_are_refused() {
    let train = |name: &str, extra: &[&str]| {
        let dir = tmp(name);
        let mut args = vec![
            "train", "--family", "sinusoid", "--model", "mlp", "--hidden", "8,8",
        ];
        args.extend(["--backend", "ndarray", "--precision", "f64"]);
        args.extend([
            "--inner-steps",
            "5",
            "--meta-steps",
            "6",
            "--baseline-steps",
            "0",
        ]);
        args.extend(["--no-compare", "--out", dir.to_str().unwrap()]);
        args.extend(extra);
        (maml(&args), dir)
    };
    let (plain, plain_dir) = train("inner-plain", &[]);
    ok(&plain);
    let (checked, checked_dir) = train("inner-checked", &["--inner-checkpoint-every", "auto"]);
    ok(&checked);
    let config = read_json(&checked_dir.join("config.json"));
    assert_eq!(
        config["meta"]["adapt"]["inner_checkpoint_every"].as_u64(),
        Some(3),
        "auto is ⌈√5⌉: {config}"
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    numbers(&read_json(&plain_dir.join("weights.json")), &mut a);
    numbers(&read_json(&checked_dir.join("weights.json")), &mut b);
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-9 * scale,
        "weights differ by {diff:e} (scale {scale:e})"
    );

    for (extra, wanted) in [
        (
            &["--inner-checkpoint-every", "0"][..],
            "inner_checkpoint_every = 0",
        ),
        (&["--inner-checkpoint-every", "two"][..], "\"two\""),
        (
            &["--inner-checkpoint-every", "2", "--algorithm", "imaml"][..],
            "iMAML",
        ),
    ] {
        let (run, _dir) = train("inner-bad", extra);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(wanted), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
