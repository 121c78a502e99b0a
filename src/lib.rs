#![warn(missing_docs)]
//! # maml-burn
//!
//! Exact second-order MAML on [Burn](https://burn.dev). The algorithm lives in
//! [`maml_core`], generic over backends; this crate adds Burn's ndarray CPU backend (the
//! examples') and the choice of a backend at run time, for the examples, the tests and
//! the `maml` tool. Flex (the tool's default) and wgpu are in the `maml-backends` crate.

pub use maml_core;
pub use maml_data;

pub mod backend;
pub mod seed;

/// Writes a line to stdout. A closed pipe (`... | head`) ends the program quietly with
/// status 141, as SIGPIPE would; another write error is reported as `error: ...`. The
/// examples and the `maml` tool print through it.
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to standard output: {err}");
            std::process::exit(1);
        }
        std::process::exit(141);
    }
}
