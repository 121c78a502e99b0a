//! Training: the trainer that runs meta steps with a divergence guard, the built-in
//! models as files and their checkpoints, evaluation, and the problem files of every
//! version solved on any backend.

pub mod any_problem;
pub mod model_trainer;
pub mod problems;
pub mod problems_v3;
pub mod stored;
pub mod trainer;
