//! Concrete backends and a check for a usable wgpu adapter.

use std::fmt;
use std::str::FromStr;

/// The CPU backend (ndarray), `f32` by default.
pub type Cpu<F = f32> = burn_ndarray::NdArray<F>;

/// The GPU backend: wgpu (WGSL kernels), `f32`, without Burn's kernel fusion.
///
/// With fusion (`burn_wgpu::Wgpu`), Burn 0.21 computes wrong, run-to-run different
/// results for a matmul by a column vector (`[n, k] x [k, 1]`, our `out = 1` models)
/// followed by elementwise operations and a reduction: the fused matmul's autotune can
/// pick a kernel meant for vector-matrix products (tracel-ai/burn#5122, open). The tests
/// in `tests/cases/` catch it; the unfused backend passes them.
pub type Gpu = burn_wgpu::CubeBackend<burn_wgpu::WgpuRuntime, f32, i32, u32>;

/// The wgpu device type.
pub use burn_wgpu::WgpuDevice;

/// Errors of backend selection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// wgpu found no adapter (no GPU driver, no software Vulkan device).
    #[error(
        "no usable GPU adapter found for the wgpu backend (Vulkan). Install a GPU driver, or \
         Mesa's software Vulkan device: `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu), \
         then run again; use the ndarray backend (`cpu` example, `--backend ndarray`) to run \
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
            "ndarray" => Ok(BackendKind::Ndarray),
            "wgpu" => Ok(BackendKind::Wgpu),
            _ => Err(BackendError::UnknownName {
                kind: "backend",
                value: s.to_string(),
                expected: "ndarray wgpu",
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

/// The default wgpu device, after checking that wgpu can find an adapter for it the way
/// Burn will (Vulkan on Linux, high-performance preference), so that a machine without
/// one gets [`BackendError::NoAdapter`] instead of a panic inside Burn.
pub fn wgpu_device() -> Result<WgpuDevice, BackendError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: burn_graphics_backend(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
    }));
    match adapter {
        Ok(_) => Ok(WgpuDevice::DefaultDevice),
        Err(_) => Err(BackendError::NoAdapter),
    }
}

/// The graphics API Burn's `AutoGraphicsApi` picks: Metal on macOS, Vulkan elsewhere.
fn burn_graphics_backend() -> wgpu::Backends {
    if cfg!(target_os = "macos") {
        wgpu::Backends::METAL
    } else {
        wgpu::Backends::VULKAN
    }
}

/// Checks that `precision` can run on `backend`.
pub fn check_precision(backend: BackendKind, precision: Precision) -> Result<(), BackendError> {
    match (backend, precision) {
        (BackendKind::Wgpu, Precision::F64) => Err(BackendError::UnsupportedPrecision {
            backend,
            precision,
            reason: "Burn's wgpu backend compiles its kernels to WGSL, which has no 64-bit \
                     floats; use --backend ndarray for f64",
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

/// Runs `job` on `backend` in `precision`: ndarray in f32 or f64, wgpu in f32 (after
/// checking for an adapter). ndarray runs on one thread; see [`dispatch_with`].
pub fn dispatch<J: BackendJob>(
    backend: BackendKind,
    precision: Precision,
    job: J,
) -> Result<J::Output, J::Error> {
    dispatch_with(backend, precision, 1, job)
}

/// [`dispatch`] with `cpu_threads` threads for the ndarray backend.
pub fn dispatch_with<J: BackendJob>(
    backend: BackendKind,
    precision: Precision,
    cpu_threads: usize,
    job: J,
) -> Result<J::Output, J::Error> {
    check_precision(backend, precision)?;
    match (backend, precision) {
        (BackendKind::Ndarray, Precision::F32) => {
            on_cpu_pool(cpu_threads, || job.run::<Cpu<f32>>(&Default::default()))?
        }
        (BackendKind::Ndarray, Precision::F64) => {
            on_cpu_pool(cpu_threads, || job.run::<Cpu<f64>>(&Default::default()))?
        }
        (BackendKind::Wgpu, _) => job.run::<Gpu>(&wgpu_device()?),
    }
}

/// Runs `f` on a worker thread of a rayon pool of `threads` threads.
///
/// Burn's ndarray backend wraps each operation in `rayon::scope`. Called from a thread
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
