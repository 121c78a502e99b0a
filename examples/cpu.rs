//! The seed's two MAML runs (first and second order) on the CPU, with Burn's ndarray
//! backend. `cargo run --release --example cpu -- --help` lists the flags.

mod common;

use maml_burn::backend::Cpu;

fn main() -> std::process::ExitCode {
    common::run::<Cpu>(&Default::default())
}
