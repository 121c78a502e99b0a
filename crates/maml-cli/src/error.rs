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
    /// A check that found the automatic and expected results apart.
    #[error("{0}")]
    CheckFailed(String),
}
