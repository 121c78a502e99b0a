//! `maml`: check, train, evaluate and benchmark MAML (linear models, MLPs, conv nets), on the CPU
//! (Flex, the default, or ndarray) or a GPU (wgpu).

mod alloc;
mod bench;
mod compare;
mod eval;
mod figures;
mod grad;
mod metrics;
#[cfg(feature = "mpi")]
mod mpi;
mod progress;
mod train;
mod train_args;
mod training;
mod weights;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use maml_burn::backend::{BackendKind, Precision};
use maml_cli::{error, plot};

/// Exact second-order MAML on Burn.
#[derive(Debug, Parser)]
#[command(name = "maml", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to run.
#[derive(Debug, Clone, Copy, Args)]
pub struct BackendArgs {
    /// Backend: flex or ndarray (CPU), or wgpu (GPU, or Mesa's software Vulkan device).
    #[arg(long, default_value = "flex", value_parser = parse::<BackendKind>)]
    pub backend: BackendKind,
    /// Floating-point precision: f32, or f64 (CPU backends only).
    #[arg(long, default_value = "f32", value_parser = parse::<Precision>)]
    pub precision: Precision,
    /// CPU threads for the CPU backends; an MLP's meta-gradient splits its tasks over
    /// them (1 is fastest for small tasks, such as the paper's sinusoid setting, on two
    /// cores).
    #[arg(long, default_value_t = 1, value_parser = parse_threads)]
    pub threads: usize,
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
    Train(Box<train_args::TrainArgs>),
    /// Query loss before and after adaptation on fresh tasks (and the query accuracy of
    /// classification, or the error on the official one-shot runs) of a checkpoint.
    Eval(eval::EvalArgs),
    /// The exact MAML optimum over a fixed task set (second order) and the point that
    /// first-order MAML converges to, by f64 linear solves.
    Optimum(compare::OptimumArgs),
    /// Meta-steps per second and peak memory of a benchmark configuration.
    Bench(bench::BenchArgs),
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(format!(
            "invalid thread count {s:?}: expected a whole number from 1 to 1024"
        )),
    }
}

pub fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: T::Err| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Grad { problem, backend } => grad::grad(&problem, backend),
        Command::Check {
            problem,
            expected,
            tolerance,
            backend,
        } => grad::check(&problem, expected.as_deref(), tolerance, backend),
        Command::Train(args) => train::train(*args),
        Command::Eval(args) => eval::eval(args),
        Command::Optimum(args) => compare::optimum_cmd(args),
        Command::Bench(args) => bench::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    emit(&serde_json::to_string_pretty(value).expect("answers and reports serialise"));
}

pub use maml_burn::emit;
