//! `cargo run --release --example gpu` from the root: builds and runs the wgpu example
//! of `crates/maml-backends` (`examples/gpu.rs`), passing the flags on.
//!
//! The wgpu example cannot live in this package: Cargo unifies the features of the
//! packages it builds, so a GPU dependency here would compile Burn's GPU stack into the
//! `cpu` example as well. This launcher asks Cargo for the other package instead, in the
//! same profile (`--release` or not) as itself.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut command = Command::new(cargo);
    command.args(["run", "--manifest-path", manifest, "-p", "maml-backends"]);
    command.args(["--example", "wgpu"]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    command.arg("--").args(std::env::args_os().skip(1));
    match command.status() {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(err) => {
            eprintln!("error: cannot run cargo for the wgpu example: {err}");
            ExitCode::FAILURE
        }
    }
}
