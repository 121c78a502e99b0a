//! The one error type of `maml-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `maml-core`, each message naming the offending value
/// and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum MamlError {
    /// A hyperparameter is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidHyperparameter {
        /// The hyperparameter's name, e.g. `inner_lr`.
        name: &'static str,
        /// The offending value, as written.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// A name (order, loss, backend, ...) that is not one of the known ones.
    #[error("unknown {kind} {value:?}: expected one of {expected}")]
    UnknownName {
        /// What kind of name, e.g. `order`.
        kind: &'static str,
        /// The name given.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// Tensor shapes that do not fit together.
    #[error("shape mismatch at {location}: {detail}")]
    Shape {
        /// Where in the input, e.g. `tasks[2].support.x[3]`.
        location: String,
        /// What was expected and what was found.
        detail: String,
    },
    /// A support or query set with no rows, or a problem with no tasks.
    #[error("{location} is empty: {detail}")]
    Empty {
        /// Where in the input.
        location: String,
        /// What must be there.
        detail: &'static str,
    },
    /// A NaN or infinite number in the input.
    #[error("non-finite number {value} at {location}")]
    NonFinite {
        /// Where in the input.
        location: String,
        /// The value.
        value: f64,
    },
    /// Malformed or truncated JSON.
    #[error("{source_name}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// The file (or `<input>`) the JSON came from.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A file that could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// `cannot read`, `cannot write`, ...
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A data file (an image, an archive, a run listing) that cannot be used.
    #[error("bad data at {location}: {detail}")]
    BadData {
        /// The file, class or entry.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// The device's default float type differs from the backend's element type.
    #[error(
        "precision mismatch on {backend}: the backend computes in {wanted} but this device          already creates {actual} tensors (Burn fixes one default float type per device type          per process; run each precision in its own process)"
    )]
    Precision {
        /// The backend's name.
        backend: String,
        /// The backend's float element type.
        wanted: String,
        /// The device's default float type.
        actual: String,
    },
    /// A linear system without a unique solution.
    #[error(
        "the {which} has no unique solution: its matrix is singular (add tasks or query \
         rows, or change inner_lr / inner_steps)"
    )]
    Singular {
        /// Which system.
        which: &'static str,
    },
    /// A checkpoint or weights file for a model of another shape.
    #[error(
        "{path}: holds a model of shape [{found_out}, {found_in}], expected [{want_out}, {want_in}]"
    )]
    ModelShape {
        /// The file.
        path: String,
        /// Its `out`.
        found_out: usize,
        /// Its `in`.
        found_in: usize,
        /// The expected `out`.
        want_out: usize,
        /// The expected `in`.
        want_in: usize,
    },
    /// Training produced a non-finite meta-loss or gradient.
    #[error(
        "training diverged at meta step {step}: {what} = {value}; try a smaller learning rate \
         (inner_lr or meta_lr)"
    )]
    Diverged {
        /// The meta step (0-based) at which it happened.
        step: usize,
        /// `meta-loss` or `meta-gradient`.
        what: &'static str,
        /// The non-finite value.
        value: f64,
    },
    /// Meta-training blew up while staying finite: the meta-loss rose above
    /// `threshold` times its lowest value so far.
    #[error(
        "meta-training diverged at meta step {step}: meta-loss {value:e} is above {threshold:e} \
         times the lowest loss so far ({lowest:e}, of the meta-losses and the query losses \
         before adaptation); try a smaller inner_lr or meta_lr, or --divergence-threshold off"
    )]
    DivergedAbove {
        /// The meta step (0-based).
        step: usize,
        /// The meta-loss.
        value: f64,
        /// The lowest meta-loss so far.
        lowest: f64,
        /// The factor.
        threshold: f64,
    },
    /// A checkpoint's record that could not be written or read.
    #[error("checkpoint record {path}: {detail}")]
    Record {
        /// The record's file, without its extension.
        path: PathBuf,
        /// What Burn's recorder said.
        detail: String,
    },
    /// Data-parallel training failed to exchange gradients.
    #[error("data-parallel meta step {step} failed: {detail}")]
    Distributed {
        /// The meta step.
        step: usize,
        /// What the communication layer said.
        detail: String,
    },
}

impl MamlError {
    /// Wraps a `serde_json` error with the name of what was being parsed.
    pub fn json(source_name: impl Into<String>, err: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its message; keep only the cause.
        let message = err.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        MamlError::Json {
            source_name: source_name.into(),
            line: err.line(),
            column: err.column(),
            message,
        }
    }

    /// An I/O error with the path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MamlError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`MamlError`].
pub type Result<T> = std::result::Result<T, MamlError>;
