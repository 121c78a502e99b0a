//! `maml graph`: the structure of a meta step's graph read back from its JSON, against
//! the structure the math says, for the seed's problem in both orders and a two-step MLP;
//! the seed's numbers on its nodes against the seed's own printout; folding; errors.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::train::{maml, ok, tmp};

fn data(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests")
        .join(path)
        .display()
        .to_string()
}

/// The graph of `problem` as JSON, drawn with `extra` flags.
fn graph(problem: &str, extra: &[&str]) -> serde_json::Value {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = tmp(&format!("graph-{}", RUNS.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&*dir).unwrap();
    let out = dir.join("graph.json");
    let mut args = vec!["graph", problem, "--out", out.to_str().unwrap()];
    args.extend(extra);
    ok(&maml(&args));
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

fn ids(graph: &serde_json::Value) -> BTreeSet<String> {
    let nodes = graph["nodes"].as_array().unwrap();
    nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// The edges of `kind` as `from -> to`, with whether they are cut.
fn edges(graph: &serde_json::Value, kind: &str) -> HashMap<(String, String), bool> {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| {
            let end = |k: &str| e[k].as_str().unwrap().to_string();
            ((end("from"), end("to")), e["cut"].as_bool().unwrap())
        })
        .collect()
}

/// The nodes reachable from `from` along forward and gradient edges that this order's
/// meta-gradient passes (cut ones left out).
fn reach(graph: &serde_json::Value, from: &str) -> BTreeSet<String> {
    let live: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "backward" && e["cut"] == false)
        .map(|e| {
            let end = |k: &str| e[k].as_str().unwrap().to_string();
            (end("from"), end("to"))
        })
        .collect();
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        for (a, b) in &live {
            if *a == n && seen.insert(b.clone()) {
                stack.push(b.clone());
            }
        }
    }
    seen
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_seed_graph_has_the_seed_names_and_first_order_cuts_the_support_gradients() {
    let problem = data("data/seed-second-order.json");
    for order in ["first", "second"] {
        let g = graph(&problem, &["--order", order]);
        assert_eq!(g["order"], order);
        assert_eq!(
            ids(&g),
            set(&[
                "w0", "b0", "x_spt", "y_spt", "loss_spt", "grad_w0", "grad_b0", "w1", "b1",
                "x_qry", "y_qry", "wx_qry", "out_qry", "loss_qry",
            ])
        );
        // w1 = w0 − lr·∂loss_spt/∂w0 (b alike); the query loss (w1·x_qry + b1 − y_qry)².
        let forward: BTreeSet<_> = edges(&g, "forward").into_keys().collect();
        assert_eq!(
            forward,
            pairs(&[
                ("w0", "loss_spt"),
                ("b0", "loss_spt"),
                ("x_spt", "loss_spt"),
                ("y_spt", "loss_spt"),
                ("w0", "w1"),
                ("grad_w0", "w1"),
                ("b0", "b1"),
                ("grad_b0", "b1"),
                ("w1", "wx_qry"),
                ("x_qry", "wx_qry"),
                ("wx_qry", "out_qry"),
                ("b1", "out_qry"),
                ("out_qry", "loss_qry"),
                ("y_qry", "loss_qry"),
            ])
        );
        let gradient = edges(&g, "gradient");
        let cut = order == "first";
        assert_eq!(
            gradient,
            HashMap::from([
                (("loss_spt".into(), "grad_w0".into()), cut),
                (("loss_spt".into(), "grad_b0".into()), cut),
            ])
        );
        let backward: BTreeSet<_> = edges(&g, "backward").into_keys().collect();
        assert_eq!(backward, pairs(&[("loss_qry", "w0"), ("loss_qry", "b0")]));
        // Second order: ∂w1/∂b0 = −lr·∂²loss_spt/∂w∂b = −2·lr·x_spt ≠ 0, so b0 reaches w1;
        // first order holds the gradient constant: b0 reaches b1 alone.
        let from_b0 = reach(&g, "b0");
        assert_eq!(from_b0.contains("w1"), order == "second", "{from_b0:?}");
        assert!(from_b0.contains("b1") && from_b0.contains("loss_qry"));
        let labels: Vec<&str> = g["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "gradient")
            .map(|e| e["label"].as_str().unwrap())
            .collect();
        let wanted = match cut {
            true => "cut: first-order approximation",
            false => "first-order approximation?",
        };
        assert!(labels.iter().all(|l| *l == wanted), "{labels:?}");
    }
}

/// A number at the start of a value, e.g. `-1.934789` of `-1.934789`.
fn value(graph: &serde_json::Value, id: &str) -> f64 {
    let node = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap();
    node["value"].as_str().unwrap().parse().unwrap()
}

#[test]
fn the_seed_graph_carries_the_seed_printout_numbers() {
    // The seed's own printout (PyTorch), first-order run.
    let printout = std::fs::read_to_string(data("data/seed-printout.txt")).unwrap();
    let number_after = |prefix: &str| -> f64 {
        let line = printout.lines().find(|l| l.starts_with(prefix)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let g = graph(
        &data("data/seed-first-order.json"),
        &["--values", "--backend", "ndarray"],
    );
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    assert!(close(value(&g, "w0"), number_after("w0:")));
    assert!(close(value(&g, "grad_w0"), number_after("gradient of w0")));
    assert!(close(value(&g, "grad_b0"), number_after("gradient of b0")));
    assert!(close(value(&g, "w1"), number_after("Fast Weights(w1)")));
    assert!(close(value(&g, "b1"), number_after("Fast Weights(b1)")));
    // The meta-gradient, written on the backward edge into w0.
    let automatic = number_after("(Automate) First-order");
    let into_w0 = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "backward" && e["to"] == "w0")
        .unwrap()["label"]
        .as_str()
        .unwrap()
        .to_string();
    let written: f64 = into_w0.rsplit("= ").next().unwrap().parse().unwrap();
    assert!(close(written, automatic), "{into_w0}");
    // The query loss (w1·2 + b1)², from the printed fast weights.
    let q = 2.0 * number_after("Fast Weights(w1)") + number_after("Fast Weights(b1)");
    assert!(close(value(&g, "loss_qry"), q * q));
}

#[test]
fn a_two_step_mlp_graph_has_every_step_and_first_order_cuts_every_gradient() {
    // Three linear layers (tanh between): six tensors, two inner steps of SGD.
    let problem = data("data-mlp/public-mlp-008.json");
    let tensors = [
        "l0_weight",
        "l0_bias",
        "l2_weight",
        "l2_bias",
        "l4_weight",
        "l4_bias",
    ];
    for order in ["first", "second"] {
        let g = graph(&problem, &["--order", order]);
        let ids = ids(&g);
        let forward: BTreeSet<_> = edges(&g, "forward").into_keys().collect();
        let gradient = edges(&g, "gradient");
        assert_eq!(gradient.len(), 12, "one gradient per tensor per step");
        assert!(gradient.values().all(|&cut| cut == (order == "first")));
        for k in 0..2 {
            let loss = format!("loss_spt{k}");
            for t in tensors {
                let (from, to, grad) = (
                    format!("{t}_{k}"),
                    format!("{t}_{}", k + 1),
                    format!("grad_{t}_{k}"),
                );
                // θ_{k+1} = θ_k − lr·∂loss_spt_k/∂θ_k, and nothing else.
                let inputs: BTreeSet<_> = forward
                    .iter()
                    .filter(|(_, b)| *b == to)
                    .map(|(a, _)| a.clone())
                    .collect();
                assert_eq!(inputs, set(&[&from, &grad]), "{to}");
                assert!(forward.contains(&(from.clone(), loss.clone())));
                assert!(gradient.contains_key(&(loss.clone(), grad)));
            }
            assert!(forward.contains(&("x_spt".into(), loss.clone())));
        }
        // The query pass runs θ2: layer by layer, into loss_qry; backward to all of θ0.
        for t in tensors {
            let layer = &t[1..2];
            assert!(forward.contains(&(format!("{t}_2"), format!("q{layer}"))));
            assert!(ids.contains(&format!("{t}_0")));
        }
        assert!(forward.contains(&("q4".into(), "loss_qry".into())));
        assert_eq!(edges(&g, "backward").len(), 6);
        // Second order: the first layer's initial weight reaches the last layer's fast
        // bias through the support gradients; first order: only through its own chain.
        let from = reach(&g, "l0_weight_0");
        assert_eq!(from.contains("l4_bias_2"), order == "second");
        assert!(from.contains("l0_weight_2") && from.contains("loss_qry"));
    }
}

#[test]
fn long_inner_loops_are_folded_and_conv_layers_drawn_as_one_node() {
    // Five inner steps, three drawn: 0, 1 and 4; steps 2 and 3 folded. Four linear
    // layers, eight tensors: one node per layer.
    let g = graph(&data("data-mlp/public-mlp-005.json"), &[]);
    let ids = ids(&g);
    assert!(ids.contains("fold") && ids.contains("loss_spt4") && !ids.contains("loss_spt2"));
    let forward: BTreeSet<_> = edges(&g, "forward").into_keys().collect();
    assert!(forward.contains(&("l0_2".into(), "fold".into())));
    assert!(forward.contains(&("fold".into(), "l6_4".into())));
    let notes = g["notes"].to_string();
    assert!(notes.contains("inner steps 2 to 3 are folded"), "{notes}");
    // A conv net: one node per layer with parameters; three steps, none folded.
    let g = graph(&data("data-conv/public-conv-009.json"), &[]);
    let conv = self::ids(&g);
    for id in ["l0_0", "l3_0", "l4_0", "l7_0", "l7_3", "fold"] {
        assert_eq!(conv.contains(id), id != "fold", "{id}: {conv:?}");
    }
}

#[test]
fn the_picture_is_svg_or_dot_and_bad_requests_are_refused() {
    let dir = tmp("graph-files");
    std::fs::create_dir_all(&*dir).unwrap();
    let problem = data("data/seed-first-order.json");
    let svg = dir.join("seed.svg");
    ok(&maml(&["graph", &problem, "--out", svg.to_str().unwrap()]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("MAML meta step, first order"));
    assert!(text.contains("stroke-dasharray"), "dashed cut edges");
    let dot = dir.join("seed.dot");
    ok(&maml(&["graph", &problem, "--out", dot.to_str().unwrap()]));
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(text.starts_with("digraph"));
    assert!(text.contains(
        "\"loss_spt\" -> \"grad_w0\" [style=dashed, color=gray, label=\"cut: first-order approximation\"]"
    ));
    let fails = |args: &[&str], wanted: &str| {
        let run = maml(args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(
            stderr.starts_with("error:") && stderr.contains(wanted),
            "{stderr}"
        );
    };
    let txt = dir.join("seed.txt");
    fails(
        &["graph", &problem, "--out", txt.to_str().unwrap()],
        "seed.txt",
    );
    fails(
        &[
            "graph",
            &problem,
            "--out",
            svg.to_str().unwrap(),
            "--max-steps",
            "1",
        ],
        "max_steps = 1",
    );
    fails(
        &["graph", "/nonexistent.json", "--out", svg.to_str().unwrap()],
        "/nonexistent.json",
    );
}
