//! The seed's two MAML runs (first and second order) on a GPU, with Burn's wgpu backend
//! (or Mesa's software Vulkan device). `cargo run --release --example gpu -- --help`
//! lists the flags.

mod common;

use std::process::ExitCode;

use maml_backends::{Gpu, wgpu_device};

fn main() -> ExitCode {
    match wgpu_device() {
        Ok(device) => common::run::<Gpu>(&device),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
