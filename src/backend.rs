//! Burn's Flex CPU backend (the default) and the choice of a backend at run time. The
//! other backends (ndarray, wgpu) live in the `maml-backends` crate, so that the `cpu`
//! example compiles neither of them nor the GPU stack.

use std::fmt;
use std::str::FromStr;

/// Burn's Flex CPU backend, the default: about 1 µs per small operation against 5-10 µs
/// on ndarray. Its float type is chosen at run time per device ([`flex_device`]).
pub type Flex = burn_flex::Flex;

/// The Flex device type.
pub use burn_flex::FlexDevice;

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
    /// The backend is not part of this build (ndarray and wgpu need the `maml-backends`
    /// crate).
    #[error("the {0} backend is not part of this build: {1}")]
    NotBuilt(BackendKind, &'static str),
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

/// Work that runs on whichever backend is chosen at run time: [`dispatch`] calls
/// [`BackendJob::run`] with the concrete backend type.
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

/// The Flex device, computing in `precision`. Flex has one backend type (`Flex<f32>`)
/// and takes its float type from the device's settings, which Burn fixes once per
/// process: f64 must be asked for before any Flex tensor is made.
pub fn flex_device(precision: Precision) -> Result<FlexDevice, BackendError> {
    use burn::tensor::{DType, FloatDType, get_device_settings, set_default_dtypes};
    let device = FlexDevice;
    let wanted = match precision {
        Precision::F32 => FloatDType::F32,
        Precision::F64 => FloatDType::F64,
    };
    if precision == Precision::F64 {
        // Fails when the settings were already fixed (to anything): checked below.
        let _ = set_default_dtypes::<Flex>(&device, DType::F64, DType::I64);
    }
    let actual = get_device_settings::<Flex>(&device).float_dtype;
    if actual == wanted {
        Ok(device)
    } else {
        Err(BackendError::FlexPrecisionFixed {
            actual: format!("{actual:?}"),
        })
    }
}

/// Runs `job` on Flex in `precision` (f32 or f64), on a pool of `cpu_threads` threads.
/// ndarray and wgpu are [`BackendError::NotBuilt`] here: the `maml-backends` crate's
/// `dispatch_with` adds them.
pub fn dispatch_cpu<J: BackendJob>(
    backend: BackendKind,
    precision: Precision,
    cpu_threads: usize,
    job: J,
) -> Result<J::Output, J::Error> {
    check_precision(backend, precision)?;
    match backend {
        BackendKind::Flex => {
            let device = flex_device(precision)?;
            on_cpu_pool(cpu_threads, || job.run::<Flex>(&device))?
        }
        BackendKind::Ndarray | BackendKind::Wgpu => Err(BackendError::NotBuilt(
            backend,
            "use the maml tool or the maml-backends crate",
        )
        .into()),
    }
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
