//! Burn's ndarray CPU backend (the examples') and the choice of a backend at run time.
//! Flex (the `maml` tool's default) and wgpu live in the `maml-backends` crate, so that
//! the `cpu` example compiles neither of them nor the GPU stack.

use std::fmt;
use std::str::FromStr;

/// Burn's ndarray CPU backend, `f32` by default: the examples' backend (a small build).
/// The `maml` tool defaults to Flex (`maml-backends`), about 1 µs per small operation
/// against ndarray's 5-10 µs.
pub type Cpu<F = f32> = burn_ndarray::NdArray<F>;

/// Errors of backend selection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// wgpu found no adapter (no GPU driver, no software Vulkan device).
    #[error(
        "no usable GPU adapter found for the wgpu backend (Vulkan). Install a GPU driver, or \
         Mesa's software Vulkan device: `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu), \
         then run again; use a CPU backend (`cpu` example, `--backend flex`) to run \
         without one"
    )]
    NoAdapter,
    /// A precision the chosen backend cannot run.
    #[error("precision {precision} is not supported on the {backend} backend: {reason}")]
    UnsupportedPrecision {
        /// The backend.
        backend: BackendKind,
        /// The precision asked for.
        precision: Precision,
        /// Why.
        reason: &'static str,
    },
    /// The CPU thread pool could not be started.
    #[error("cannot start the CPU thread pool: {0}")]
    ThreadPool(String),
    /// Flex's float type is fixed per process by the first tensor made.
    #[error(
        "the flex device already computes in {actual}; Burn fixes a device's float type once \
         per process: run each precision in its own process"
    )]
    FlexPrecisionFixed {
        /// The float type already set.
        actual: String,
    },
    /// A backend or precision name that is not known.
    #[error("unknown {kind} {value:?}: expected one of {expected}")]
    UnknownName {
        /// `backend` or `precision`.
        kind: &'static str,
        /// The name given.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
}

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Flex, on the CPU (the default).
    Flex,
    /// ndarray, on the CPU.
    Ndarray,
    /// wgpu, on a GPU (or Mesa's software Vulkan device).
    Wgpu,
}

/// Floating-point precision of the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        })
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s {
            "flex" => Ok(BackendKind::Flex),
            "ndarray" => Ok(BackendKind::Ndarray),
            "wgpu" => Ok(BackendKind::Wgpu),
            _ => Err(BackendError::UnknownName {
                kind: "backend",
                value: s.to_string(),
                expected: "flex ndarray wgpu",
            }),
        }
    }
}

impl FromStr for Precision {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            _ => Err(BackendError::UnknownName {
                kind: "precision",
                value: s.to_string(),
                expected: "f32 f64",
            }),
        }
    }
}

/// Checks that `precision` can run on `backend`.
pub fn check_precision(backend: BackendKind, precision: Precision) -> Result<(), BackendError> {
    match (backend, precision) {
        (BackendKind::Wgpu, Precision::F64) => Err(BackendError::UnsupportedPrecision {
            backend,
            precision,
            reason: "Burn's wgpu backend compiles its kernels to WGSL, which has no 64-bit \
                     floats; use --backend flex or ndarray for f64",
        }),
        _ => Ok(()),
    }
}

/// Work that runs on whichever backend is chosen at run time: `maml_backends::dispatch_with`
/// calls [`BackendJob::run`] with the concrete backend type.
pub trait BackendJob: Send {
    /// What the job returns.
    type Output: Send;
    /// The job's error; backend selection errors convert into it.
    type Error: From<BackendError> + Send;
    /// Runs on backend `B`.
    fn run<B: burn::prelude::Backend>(
        self,
        device: &B::Device,
    ) -> Result<Self::Output, Self::Error>;
}

/// Runs `f` on a worker thread of a rayon pool of `threads` threads.
///
/// Flex parallelises large operations on the current rayon pool, so `threads` bounds
/// it. Burn's ndarray backend wraps each operation in `rayon::scope`. Called from a thread
/// outside a pool, every such scope is a round trip: the job is queued for a worker and
/// the caller sleeps until it is done, which for the small tensors of meta-learning
/// costs more than the operation itself. On a worker thread the same scope runs in
/// place. With one thread (the default) nothing is handed between threads at all;
/// larger problems may gain from more.
pub fn on_cpu_pool<R: Send>(
    threads: usize,
    f: impl FnOnce() -> R + Send,
) -> Result<R, BackendError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| BackendError::ThreadPool(e.to_string()))?;
    Ok(pool.install(f))
}
