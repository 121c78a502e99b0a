//! Backend-parameterised tests, f64: flex and ndarray. The same test bodies as the `backends`
//! binary (`tests/cases/`), in a process of their own (see there).

/// Instantiates each generic test of the calling module as `flex_f64::name` and
/// `ndarray_f64::name`.
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        mod flex_f64 {
            $(#[test]
            fn $test() {
                use maml_backends::{Flex, flex_device};
                use maml_burn::backend::Precision;
                super::$test::<Flex>(&flex_device(Precision::F64).unwrap());
            })+
        }
        mod ndarray_f64 {
            $(#[test]
            fn $test() {
                super::$test::<maml_backends::Cpu<f64>>(&Default::default());
            })+
        }
    };
}
pub(crate) use backend_tests;

#[path = "../common/mod.rs"]
mod common;

#[path = "../cases/checkpointed.rs"]
mod checkpointed;
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
#[path = "../cases/implicit.rs"]
mod implicit;
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
