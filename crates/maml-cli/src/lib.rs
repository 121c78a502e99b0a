#![warn(missing_docs)]
//! # maml-cli
//!
//! The parts of the `maml` tool that its tests use directly: its error type and its
//! plots ([`plot::line_plot`]). The commands themselves are the `maml` binary.

pub mod error;
pub mod plot;
