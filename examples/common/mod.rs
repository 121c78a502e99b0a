//! Shared code of the `cpu` and `gpu` examples: the seed's two recorded MAML runs, printed
//! in the seed's order of lines, automatic and closed-form results side by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::Backend;
use clap::{Parser, ValueEnum};
use maml_burn::emit;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::families::SeedFamily;
use maml_burn::maml_core::{AdaptConfig, Loss, MetaConfig, Order};
use maml_burn::maml_data::graph::render::write_graph;
use maml_burn::maml_data::graph::values::write_values;
use maml_burn::maml_data::graph::{GraphOptions, meta_graph};
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::trace::trace_meta_step;
use maml_burn::seed::seed_printout;

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
    /// Also draw each run's computation graph with its numbers: FILE.svg, .dot or .json
    /// (both orders: FILE-first-order.svg and FILE-second-order.svg).
    #[arg(long)]
    graph: Option<PathBuf>,
}

/// Where the graph of the run of `order` goes: `path`, or with both orders drawn,
/// `STEM-first-order.EXT` and `STEM-second-order.EXT` beside it.
fn graph_path(path: &Path, order: Order, both: bool) -> PathBuf {
    if !both {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("graph");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("svg");
    path.with_file_name(format!("{stem}-{order}-order.{ext}"))
}

/// Draws the graph of the seed's meta step from `initial` in `order`, with its values.
fn draw<B: Backend>(
    initial: &LinearWeights,
    config: &MetaConfig,
    path: &Path,
    device: &B::Device,
) -> maml_burn::maml_core::error::Result<()> {
    let problem = Problem::linear(initial, vec![SeedFamily::task()], &config.adapt);
    let mut graph = meta_graph(&problem, &GraphOptions::default())?;
    write_values::<B>(&mut graph, &problem, device)?;
    write_graph(&graph, path)
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
        if let Some(path) = &args.graph {
            let path = graph_path(path, order, orders.len() == 2);
            if let Err(err) = draw::<B>(&initial, &config, &path, device) {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
            eprintln!("wrote the {order}-order graph to {}", path.display());
        }
        match trace_meta_step::<B>(&initial, std::slice::from_ref(&task), config, device) {
            Ok(trace) if args.json => {
                emit(&serde_json::to_string_pretty(&trace).expect("a trace holds only numbers"))
            }
            Ok(trace) => {
                for line in seed_printout(&trace) {
                    emit(&line);
                }
            }
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
