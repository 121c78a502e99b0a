//! maml-core's integration tests (ndarray, f32), in one test binary: the `nn` layers
//! against hand-worked values, the trainer of any model (resume, evaluation), and
//! meta-learners on several threads of one process.

mod nn;
mod threads;
mod trainer;
