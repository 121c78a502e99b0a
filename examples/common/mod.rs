//! Shared code of the `cpu` and `gpu` examples: the seed's two recorded MAML runs, printed
//! in the seed's order of lines, automatic and closed-form results side by side.

use std::process::ExitCode;

use burn::prelude::Backend;
use clap::{Parser, ValueEnum};
use maml_burn::emit;
use maml_burn::maml_core::{
    AdaptConfig, LinearWeights, Loss, MetaConfig, MetaStepTrace, Order, SeedFamily, trace_meta_step,
};

/// The seed's recorded initial weights (its README): first-order run, second-order run.
const SEED_W0_FIRST: f64 = -1.9347891807556152;
const SEED_W0_SECOND: f64 = -0.7597505450248718;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Orders {
    First,
    Second,
    Both,
}

/// The seed's MAML step on a 1x1 linear model: support x = 1, query x = 2, loss
/// `model(x) ** 2`, inner lr 1, meta lr 1.
#[derive(Debug, Parser)]
struct Args {
    /// Which runs to print.
    #[arg(long, value_enum, default_value = "both")]
    order: Orders,
    /// Initial weight w0 (default: the seed's recorded value for each run).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "random_init")]
    w0: Option<f64>,
    /// Initial bias b0.
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    b0: f64,
    /// Draw w0 by Kaiming-normal initialisation (std = sqrt(2 / in)), as the seed does.
    #[arg(long)]
    random_init: bool,
    /// Seed of the RNG for --random-init.
    #[arg(long, default_value_t = 0)]
    rng_seed: u64,
    /// Print each run's trace as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Parses the command line and prints the requested runs on backend `B`.
pub fn run<B: Backend>(device: &B::Device) -> ExitCode {
    let args = Args::parse();
    let orders: &[Order] = match args.order {
        Orders::First => &[Order::First],
        Orders::Second => &[Order::Second],
        Orders::Both => &[Order::First, Order::Second],
    };
    let task = SeedFamily::task();
    emit(&format!("backend: {}", B::name(device)));
    for &order in orders {
        let initial = match (args.random_init, args.w0) {
            (true, _) => LinearWeights::kaiming(1, 1, args.rng_seed),
            (false, Some(w0)) => LinearWeights::from_flat(&[w0], &[args.b0], 1),
            (false, None) => {
                let w0 = match order {
                    Order::First => SEED_W0_FIRST,
                    Order::Second => SEED_W0_SECOND,
                };
                LinearWeights::from_flat(&[w0], &[args.b0], 1)
            }
        };
        let config = MetaConfig::new(
            AdaptConfig::new(1.0)
                .with_inner_steps(1)
                .with_order(order)
                .with_loss(Loss::Sse),
        )
        .with_meta_lr(1.0);
        match trace_meta_step::<B>(&initial, std::slice::from_ref(&task), config, device) {
            Ok(trace) if args.json => {
                emit(&serde_json::to_string_pretty(&trace).expect("a trace holds only numbers"))
            }
            Ok(trace) => print_trace(&trace),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Prints one run in the seed's order of lines (shared/seed/), for a 1x1 model.
fn print_trace(t: &MetaStepTrace) {
    let second = t.config.adapt.order == Order::Second;
    let (w0, b0) = (t.initial.weight[0][0], t.initial.bias[0]);
    let step = &t.inner_steps[0];
    let (gw, gb) = (
        step.support_grad[0].weight[0][0],
        step.support_grad[0].bias[0],
    );
    let fast = &t.fast_weights[0];
    let (w1, b1) = (fast.weight[0][0], fast.bias[0]);
    let auto = t.meta_grad.weight[0][0];
    let manual = t.manual_meta_grad.weight[0][0];
    let name = if second {
        "Second Order"
    } else {
        "First-Order"
    };

    emit("");
    emit(&format!("> Second-order = {}", py_bool(second)));
    emit("");
    emit("Initial parameter value:");
    emit(&format!("w0:  {w0}"));
    emit(&format!("b0:  {b0}"));
    emit("Support set");
    let leaf = py_bool(t.initial_is_leaf);
    emit(&format!("w.is_leaf= {leaf} b.is_leaf= {leaf}"));
    emit(&format!("Support loss: {}", step.support_loss[0]));
    emit("Gradient Over Support Set:");
    emit(&format!("gradient of w0 {gw}"));
    emit(&format!("gradient of b0 {gb}"));
    emit("Calculate fast weights...");
    emit(&format!("Fast Weights(w1): {w0}-{gw}= {w1}"));
    emit(&format!("Fast Weights(b1): {b0}-{gb}= {b1}"));
    emit("Query set");
    let fast_leaf = py_bool(!t.fast_tracked);
    emit(&format!("w.is_leaf= {fast_leaf} b.is_leaf= {fast_leaf}"));
    // A gradient that autodiff tracks was produced by an operation, so it is no leaf.
    let tracked = step.grad_requires_grad;
    emit(&format!(
        "{name}, delta loss/ delta w0 requires_grad ? {}",
        py_bool(tracked)
    ));
    emit(&format!(
        "{name}, delta loss/ delta w0 is_leaf ? {}",
        py_bool(!tracked)
    ));
    emit(&format!("Query loss: {}", t.query_loss[0]));
    emit("After calculating gradient on query set, let check the parameters of meta learner.");
    emit(&format!("current w of meta-learner {w0}"));
    emit(&format!("current b of meta-learner {b0}"));
    if second {
        emit(&format!(
            "(Automate) Second-order derivative of loss on query set w.r.t. w {auto}"
        ));
        emit("Manual:");
        emit(&format!("Second-order derivative {manual}"));
    } else {
        emit(&format!(
            "(Automate) First-order approximate derivative of loss on query set w.r.t. w {auto}"
        ));
        emit("Manual:");
        emit(&format!("First-order derivative {manual}"));
    }
    emit(&format!(
        "automatic - manual = {:e} (relative {:e})",
        auto - manual,
        (auto - manual).abs() / manual.abs().max(f64::MIN_POSITIVE)
    ));
    emit("After update on query set.");
    emit("(Automate): ");
    emit(&format!(" w0'={}", t.updated.weight[0][0]));
    emit("(Manual): ");
    emit(&format!("w0'=w0-g{}", if second { "w2" } else { "w1" }));
    emit(&format!("{}'={w0}-{manual}", t.manual_updated.weight[0][0]));
}
