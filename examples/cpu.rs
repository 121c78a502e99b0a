//! The seed's two MAML runs (first and second order) on the CPU, with Burn's Flex
//! backend. `cargo run --release --example cpu -- --help` lists the flags.

mod common;

use maml_burn::backend::{Flex, Precision, flex_device};

fn main() -> std::process::ExitCode {
    match flex_device(Precision::F32) {
        Ok(device) => common::run::<Flex>(&device),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
