//! `maml`: check, train, evaluate and benchmark MAML on a linear model, on the CPU
//! (ndarray) or a GPU (wgpu).

mod error;
mod grad;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use maml_burn::backend::{BackendKind, Precision};

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
    /// Backend: ndarray (CPU) or wgpu (GPU, or Mesa's software Vulkan device).
    #[arg(long, default_value = "ndarray", value_parser = parse::<BackendKind>)]
    pub backend: BackendKind,
    /// Floating-point precision: f32, or f64 (ndarray only).
    #[arg(long, default_value = "f32", value_parser = parse::<Precision>)]
    pub precision: Precision,
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
}

fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
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
    println!(
        "{}",
        serde_json::to_string_pretty(value)
            .expect("answers and reports hold only finite numbers and strings")
    );
}
