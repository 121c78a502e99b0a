#![warn(missing_docs)]
//! # maml-cli
//!
//! The `maml` tool's commands, compiled once with the generic training stacks they
//! instantiate (every backend and precision, each built-in model): the binary
//! (`src/main.rs`) holds only the arguments and calls [`commands`]. Its tests use the
//! error type and the plots ([`plot::line_plot`]) directly.

pub mod alloc;
pub mod error;
pub mod plot;

mod bench;
mod compare;
mod eval;
mod family_args;
mod figures;
mod grad;
mod graph;
mod metrics;
#[cfg(feature = "mpi")]
mod mpi;
mod progress;
mod scoring;
mod train;
mod train_args;
mod training;
mod validation;
mod weights;
mod workers;

use clap::Args;
use maml_burn::backend::{BackendKind, Precision};

/// The commands of the `maml` tool, each with its arguments: each reads its files, runs
/// on the backend it is given and writes its outputs.
pub mod commands {
    pub use crate::bench::{BenchArgs, bench};
    pub use crate::compare::{OptimumArgs, optimum_cmd as optimum};
    pub use crate::eval::{EvalArgs, eval};
    pub use crate::grad::{check, grad};
    pub use crate::graph::{GraphArgs, graph};
    pub use crate::train::train;
    pub use crate::train_args::TrainArgs;
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

/// A CPU thread count from 1 to 1024.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(format!(
            "invalid thread count {s:?}: expected a whole number from 1 to 1024"
        )),
    }
}

/// Parses an argument with its type's `FromStr`, its error as text (for clap).
pub fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: T::Err| e.to_string())
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    emit(&serde_json::to_string_pretty(value).expect("answers and reports serialise"));
}

pub use maml_burn::emit;
