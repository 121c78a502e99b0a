//! maml-data's integration tests in f32 and without a backend, in one test binary (one
//! link, one instantiation of the generic code): closed forms, images, problem files,
//! the seed's number format, and property tests against the closed form. The f64
//! property tests are their own binary (`tests/properties_f64.rs`): Burn fixes one float
//! type per device type and process.

mod closed_form;
mod images;
mod properties_f32;
mod props;
mod python_repr;
mod validation;
