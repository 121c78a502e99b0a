#![warn(missing_docs)]
//! # maml-data
//!
//! What sits beside the algorithm crate [`maml_core`] (which knows nothing of image files
//! or linear algebra), each module importing only `maml_core` and those above it here:
//!
//! - [`images`], [`few_shot`]: image classes (Omniglot's folders and zip archives, the
//!   one-shot runs' format) and N-way K-shot tasks drawn from them, a
//!   [`maml_core::TaskFamily`];
//! - [`problem`]: a problem file of any version read as one [`problem::Problem`] (a layer
//!   list, tasks, the inner loop, and in version 4 the family's parts, [`family`]),
//!   solved on any backend by [`solve::solve`];
//! - [`graph`]: the computation graph of a problem's meta step, as DOT or SVG;
//! - [`closed_form`], [`trace`]: the linear model's meta-gradient and MAML optimum in
//!   closed form (independent checks), and everything the seed prints of a meta step;
//! - [`run`], [`stored`], [`model_trainer`]: a run of a built-in model (its task source
//!   and configuration), its weights and checkpoints, and its trainer (a thin wrapper over
//!   [`maml_core::Trainer`]) with evaluation.

pub mod closed_form;
pub mod family;
pub mod few_shot;
pub mod graph;
pub mod images;
pub mod model_trainer;
pub mod problem;
mod problem_files;
pub mod run;
pub mod solve;
pub mod stored;
pub mod trace;
