//! Backend-parameterised tests, f32: flex, ndarray and wgpu. The same test bodies
//! (`tests/cases/`) run in f64 in the `backends_f64` test binary: Burn fixes one default
//! float type per device type per process, so each precision of ndarray gets a process
//! of its own.
//!
//! Every test body is written once, generic over `B: Backend`. Expected values are
//! independent of the code under test: the shared reference answers (PyTorch, float64,
//! cross-checked by JAX), the closed form in f64, finite differences, and the numbers
//! printed in the seed document.
//!
//! wgpu needs an adapter (a GPU, or Mesa's software Vulkan device). Without one the wgpu
//! tests are skipped with a message, unless `MAML_REQUIRE_WGPU=1`, when they fail.

/// Instantiates each generic test `fn name<B: Backend>(device: &B::Device)` of the
/// calling module as `flex_f32::name`, `ndarray_f32::name` and `wgpu_f32::name`.
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        mod flex_f32 {
            $(#[test]
            fn $test() {
                use maml_backends::{Flex, flex_device};
                use maml_burn::backend::Precision;
                super::$test::<Flex>(&flex_device(Precision::F32).unwrap());
            })+
        }
        mod ndarray_f32 {
            $(#[test]
            fn $test() {
                super::$test::<maml_backends::Cpu<f32>>(&Default::default());
            })+
        }
        mod wgpu_f32 {
            $(#[test]
            fn $test() {
                if let Some(device) = $crate::common::wgpu() {
                    super::$test::<maml_backends::Gpu>(&device);
                }
            })+
        }
    };
}
pub(crate) use backend_tests;

#[path = "../common/mod.rs"]
mod common;

#[path = "../cases/closed_form.rs"]
mod closed_form;
#[path = "../cases/convergence.rs"]
mod convergence;
#[path = "../cases/finite_differences.rs"]
mod finite_differences;
#[path = "../cases/finite_differences_conv.rs"]
mod finite_differences_conv;
#[path = "../cases/finite_differences_mlp.rs"]
mod finite_differences_mlp;
#[path = "../cases/orders.rs"]
mod orders;
#[path = "../cases/reference.rs"]
mod reference;
#[path = "../cases/reference_conv.rs"]
mod reference_conv;
#[path = "../cases/reference_family.rs"]
mod reference_family;
#[path = "../cases/reference_mlp.rs"]
mod reference_mlp;
#[path = "../cases/reference_nn.rs"]
mod reference_nn;
#[path = "../cases/training.rs"]
mod training;
