//! The seed's printout: a traced meta step of the 1x1 linear model as the seed's
//! PyTorch script prints it, numbers as Python's `repr` writes them.

use maml_core::Order;
use maml_data::trace::MetaStepTrace;
use maml_data::trace::python_repr;

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// One traced run of a 1x1 model as the seed's script prints it, line by line, in its
/// order of lines (with the support and query losses and the automatic - manual
/// difference added).
pub fn seed_printout(t: &MetaStepTrace) -> Vec<String> {
    let mut lines = Vec::new();
    let mut push = |line: &str| lines.push(line.to_string());
    let second = t.config.adapt.order == Order::Second;
    // Numbers as the seed's Python prints them (`repr`): `0.0`, `-1.9347891807556152`.
    let r = python_repr;
    let (w0, b0) = (r(t.initial.weight[0][0]), r(t.initial.bias[0]));
    let step = &t.inner_steps[0];
    let (gw, gb) = (
        r(step.support_grad[0].weight[0][0]),
        r(step.support_grad[0].bias[0]),
    );
    let fast = &t.fast_weights[0];
    let (w1, b1) = (r(fast.weight[0][0]), r(fast.bias[0]));
    let (auto, manual) = (t.meta_grad.weight[0][0], t.manual_meta_grad.weight[0][0]);
    let name = if second {
        "Second Order"
    } else {
        "First-Order"
    };

    push("");
    push(&format!("> Second-order = {}", py_bool(second)));
    push("");
    push("Initial parameter value:");
    push(&format!("w0:  {w0}"));
    push(&format!("b0:  {b0}"));
    push("Support set");
    let leaf = py_bool(t.initial_is_leaf);
    push(&format!("w.is_leaf= {leaf} b.is_leaf= {leaf}"));
    push(&format!("Support loss: {}", r(step.support_loss[0])));
    push("Gradient Over Support Set:");
    push(&format!("gradient of w0 {gw}"));
    push(&format!("gradient of b0 {gb}"));
    push("Calculate fast weights...");
    push(&format!("Fast Weights(w1): {w0}-{gw}= {w1}"));
    push(&format!("Fast Weights(b1): {b0}-{gb}= {b1}"));
    push("Query set");
    let fast_leaf = py_bool(!t.fast_tracked);
    push(&format!("w.is_leaf= {fast_leaf} b.is_leaf= {fast_leaf}"));
    // A gradient that autodiff tracks was produced by an operation, so it is no leaf.
    let tracked = step.grad_requires_grad;
    push(&format!(
        "{name}, delta loss/ delta w0 requires_grad ? {}",
        py_bool(tracked)
    ));
    push(&format!(
        "{name}, delta loss/ delta w0 is_leaf ? {}",
        py_bool(!tracked)
    ));
    push(&format!("Query loss: {}", r(t.query_loss[0])));
    push("After calculating gradient on query set, let check the parameters of meta learner.");
    push(&format!("current w of meta-learner {w0}"));
    push(&format!("current b of meta-learner {b0}"));
    let (auto_s, manual_s) = (r(auto), r(manual));
    if second {
        push(&format!(
            "(Automate) Second-order derivative of loss on query set w.r.t. w {auto_s}"
        ));
        push("Manual:");
        push(&format!("Second-order derivative {manual_s}"));
    } else {
        push(&format!(
            "(Automate) First-order approximate derivative of loss on query set w.r.t. w {auto_s}"
        ));
        push("Manual:");
        push(&format!("First-order derivative {manual_s}"));
    }
    push(&format!(
        "automatic - manual = {:e} (relative {:e})",
        auto - manual,
        (auto - manual).abs() / manual.abs().max(f64::MIN_POSITIVE)
    ));
    push("After update on query set.");
    push("(Automate): ");
    push(&format!(" w0'={}", r(t.updated.weight[0][0])));
    push("(Manual): ");
    push(&format!("w0'=w0-g{}", if second { "w2" } else { "w1" }));
    push(&format!(
        "{}'={w0}-{manual_s}",
        r(t.manual_updated.weight[0][0])
    ));
    lines
}
