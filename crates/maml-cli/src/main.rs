//! `maml`: check, train, evaluate and benchmark MAML (linear models, MLPs, conv nets), on the CPU
//! (Flex, the default, or ndarray) or a GPU (wgpu).
//!
//! The binary is the tool's surface alone: its arguments and the dispatch to the
//! commands of the `maml-cli` library, where the generic training stacks are compiled
//! once (a change here recompiles this file, not the stacks).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maml_cli::BackendArgs;
use maml_cli::alloc::CountingMiMalloc;
use maml_cli::commands::{self, BenchArgs, EvalArgs, GraphArgs, OptimumArgs, TrainArgs};

#[global_allocator]
static GLOBAL: CountingMiMalloc = CountingMiMalloc;

/// Exact second-order MAML on Burn.
#[derive(Debug, Parser)]
#[command(name = "maml", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a problem file and print its answer JSON (meta_loss, meta_grad, fast_weights).
    Grad {
        /// The problem file (see docs/problem-schema.md).
        problem: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Check the automatic answer to a problem against the closed form, and against an
    /// expected answer file if given; exits non-zero when they disagree.
    Check {
        /// The problem file.
        problem: PathBuf,
        /// An expected answer (NAME.expected.json).
        #[arg(long)]
        expected: Option<PathBuf>,
        /// Relative tolerance (of the largest entry); default 1e-4 in f32, 1e-9 in f64.
        #[arg(long)]
        tolerance: Option<f64>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Meta-train a model's initial weights (linear, an MLP, a conv net): progress bar,
    /// checkpoints, metrics CSV and plots in --out.
    Train(Box<TrainArgs>),
    /// Query loss before and after adaptation on fresh tasks (and the query accuracy of
    /// classification, or the error on the official one-shot runs) of a checkpoint.
    Eval(EvalArgs),
    /// The exact MAML optimum over a fixed task set (second order) and the point that
    /// first-order MAML converges to, by f64 linear solves.
    Optimum(OptimumArgs),
    /// Meta-steps per second and peak memory of a benchmark configuration.
    Bench(BenchArgs),
    /// Draw the computation graph of one meta step of a problem file (SVG, DOT or JSON):
    /// the edges first order cuts dashed, the meta-gradient's backward path in red.
    Graph(GraphArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Grad { problem, backend } => commands::grad(&problem, backend),
        Command::Check {
            problem,
            expected,
            tolerance,
            backend,
        } => commands::check(&problem, expected.as_deref(), tolerance, backend),
        Command::Train(args) => commands::train(*args),
        Command::Eval(args) => commands::eval(args),
        Command::Optimum(args) => commands::optimum(args),
        Command::Bench(args) => commands::bench(args),
        Command::Graph(args) => commands::graph(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
