//! The `maml` tool end to end, in one test binary (one link instead of four): every
//! module runs the built `maml` binary as a user would.

mod bad_inputs;
mod grad;
mod images;
mod kill;
mod parallel;
mod plots;
mod train;
