//! maml-core's integration tests (ndarray), in one test binary: the family's schedules and
//! per-step parts, the `nn` layers
//! against hand-worked values, the trainer of any model (resume, evaluation), and
//! meta-learners on several threads of one process.

mod family;
mod nn;
mod threads;
mod trainer;
