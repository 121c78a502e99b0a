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
    /// Training stopped on an error; says which checkpoint is kept.
    #[error("{0}")]
    Stopped(String),
    /// Training stopped as diverged (every data-parallel worker and rank stops at the
    /// same step, as they share the meta-loss); says which checkpoint is kept.
    #[error("{0}")]
    Diverged(String),
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

impl CliError {
    /// Whether this is meta-training diverging, which every data-parallel worker and rank
    /// sees at the same meta step (they share the all-reduced meta-loss).
    pub fn is_divergence(&self) -> bool {
        matches!(
            self,
            CliError::Diverged(_)
                | CliError::Core(MamlError::Diverged { .. } | MamlError::DivergedAbove { .. })
        )
    }
}
