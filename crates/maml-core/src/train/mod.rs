//! Training: meta-learners that own the initial weights and their meta-optimiser,
//! trainers that run meta steps with a divergence guard, the built-in models as files
//! and their checkpoints, evaluation, and
//! the version-2 and version-3 problem files solved on any backend.

pub mod any_problem;
pub mod learner;
pub mod model_trainer;
pub mod problems;
pub mod problems_v3;
pub mod stored;
pub mod trainer;
