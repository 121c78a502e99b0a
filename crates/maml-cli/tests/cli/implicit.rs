//! `maml train --algorithm imaml` end to end (ndarray): it trains, records its settings
//! in the run's configuration, and refuses bad ones with the value named.

use super::train::{maml, ok, tmp};

/// The first value under `key` anywhere in `value`.
fn find<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

#[test]
fn imaml_trains_and_its_flags_are_checked() {
    let dir = tmp("imaml");
    let out = dir.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--algorithm", "imaml", "--backend", "ndarray"];
        args.extend(["--inner-steps", "10", "--no-compare", "--out", out]);
        args.extend(extra);
        maml(&args)
    };
    ok(&train(&[
        "--lambda",
        "2",
        "--cg-steps",
        "4",
        "--meta-steps",
        "12",
    ]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let imaml = find(&config, "imaml").expect("config.json records iMAML");
    assert_eq!(imaml["lambda"].as_f64(), Some(2.0), "{imaml}");
    assert_eq!(imaml["cg_steps"].as_u64(), Some(4), "{imaml}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 12, "{csv}");
    for row in rows {
        let loss: f64 = row.split(',').nth(1).unwrap().parse().unwrap();
        assert!(loss.is_finite() && loss >= 0.0, "{row}");
    }

    for (extra, wanted) in [
        (&["--lambda", "0"][..], "lambda"),
        (&["--lambda", "-1"][..], "-1"),
        (&["--cg-steps", "0"][..], "cg_steps"),
        (&["--meta-sgd"][..], "meta_sgd"),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let run = train(extra);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(wanted), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
