#![warn(missing_docs)]
//! # maml-backends
//!
//! maml-burn's backends beyond the examples' ndarray: Flex on the CPU (the `maml`
//! tool's default) and wgpu (a GPU, or Mesa's software Vulkan device), apart from the
//! root crate so that the `cpu` example compiles neither; and [`dispatch_with`], which
//! runs a job on any backend chosen at run time.

use maml_burn::backend::{
    BackendError, BackendJob, BackendKind, Precision, check_precision, on_cpu_pool,
};

pub use maml_burn::backend::Cpu;

/// Burn's Flex CPU backend, the `maml` tool's default: about 1 µs per small operation
/// against 5-10 µs on ndarray. Its float type is chosen at run time per device
/// ([`flex_device`]).
pub type Flex = burn_flex::Flex;

/// The Flex device type.
pub use burn_flex::FlexDevice;

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

/// Runs `job` on `backend` in `precision`: Flex or ndarray in f32 or f64 on a pool of
/// `cpu_threads` threads, wgpu in f32 (after checking for an adapter).
pub fn dispatch_with<J: BackendJob>(
    backend: BackendKind,
    precision: Precision,
    cpu_threads: usize,
    job: J,
) -> Result<J::Output, J::Error> {
    check_precision(backend, precision)?;
    match (backend, precision) {
        (BackendKind::Wgpu, _) => job.run::<Gpu>(&wgpu_device()?),
        (BackendKind::Ndarray, Precision::F32) => {
            on_cpu_pool(cpu_threads, || job.run::<Cpu<f32>>(&Default::default()))?
        }
        (BackendKind::Ndarray, Precision::F64) => {
            on_cpu_pool(cpu_threads, || job.run::<Cpu<f64>>(&Default::default()))?
        }
        (BackendKind::Flex, _) => {
            let device = flex_device(precision)?;
            on_cpu_pool(cpu_threads, || job.run::<Flex>(&device))?
        }
    }
}
