//! maml-core's integration tests in f32 and without a backend, in one test binary (one
//! link, one instantiation of the generic code, instead of three). The f64 property
//! tests are their own binary (`tests/properties_f64.rs`): Burn fixes one float type per
//! device type and process.

mod closed_form;
mod images;
mod nn;
mod properties_f32;
mod props;
mod python_repr;
mod trainer;
mod validation;
