//! The `maml` tool end to end, in one test binary (one link instead of four): every
//! module runs the built `maml` binary as a user would.

// The seed of the wgpu autotune cache, shared with the backend tests.
#[path = "../../../../tests/common/autotune.rs"]
mod autotune;
mod bad_inputs;
mod family;
mod grad;
mod graph;
mod images;
mod implicit;
mod inner_checkpoint;
mod kill;
mod parallel;
mod plots;
mod train;
mod validation;
