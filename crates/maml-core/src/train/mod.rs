//! Training: the trainer of any model ([`any_model::Trainer`]: meta steps with a
//! divergence guard, checkpoints through Burn's recorders, evaluation), the built-in
//! models as files and their checkpoints, evaluation, and problems (files of every
//! version read as one [`problem::Problem`]) solved on any backend.

pub mod any_model;
pub mod model_trainer;
pub mod problem;
mod problem_files;
pub mod solve;
pub mod stored;
pub mod trainer;
