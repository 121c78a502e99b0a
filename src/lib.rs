#![warn(missing_docs)]
//! # maml-burn
//!
//! Exact second-order MAML on [Burn](https://burn.dev). The algorithm lives in
//! [`maml_core`], generic over backends; this crate adds the glue that picks concrete
//! backends (ndarray on the CPU, wgpu on a GPU) for the examples, the tests and the
//! `maml` tool.

pub use maml_core;

pub mod backend;
