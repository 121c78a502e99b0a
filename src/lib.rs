#![warn(missing_docs)]
//! # maml-burn
//!
//! Exact second-order MAML on [Burn](https://burn.dev). The algorithm lives in
//! [`maml_core`], generic over backends; this crate adds the glue that picks concrete
//! CPU backends (Flex, the default, and ndarray) for the examples, the tests and the
//! `maml` tool. The wgpu backend is in the `maml-wgpu` crate.

pub use maml_core;

pub mod backend;
