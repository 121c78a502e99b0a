//! The one error type of the `maml` tool.

use maml_burn::backend::BackendError;
use maml_burn::maml_core::MamlError;

/// Everything the `maml` tool reports as `error: ...` with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the library.
    #[error(transparent)]
    Core(#[from] MamlError),
    /// Backend selection.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Training stopped (divergence); says which checkpoint is kept.
    #[error("{0}")]
    Stopped(String),
    /// Drawing a plot failed.
    #[error("cannot draw plot {0}")]
    Plot(String),
    /// Bad command-line usage that clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// A check that found the automatic and expected results apart.
    #[error("{0}")]
    CheckFailed(String),
}
