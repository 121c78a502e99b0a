#![warn(missing_docs)]
//! # maml-core
//!
//! Exact first- and second-order MAML (and Meta-SGD) for any Burn model, generic over
//! Burn backends (`B: Backend`). The modules are layered, each importing only those
//! above it in this list:
//!
//! - [`config`], [`error`]: hyperparameters, checked once, up front; the one error type;
//! - [`data`]: task files, task families, the tensors of a meta-batch;
//! - [`model`]: the seam ([`MetaModel`]: any `#[derive(Module)]` with a forward pass over
//!   a meta-batch) and the built-in models (the linear model, the MLP, the layered model
//!   of conv nets);
//! - [`nn`]: twice-differentiable layers with `burn::nn`'s shape of API (`Linear`,
//!   `Conv2d`, `BatchNorm` on the batch's statistics, pooling, `Flatten`), for models of
//!   the seam;
//! - [`algo`]: the inner loop and the meta-gradient, by nested autodiff (second order:
//!   [`SecondOrder`] = `Autodiff<Autodiff<B>>`) or by a model's hand-derived road;
//! - [`train`]: the trainer of any model ([`Trainer`]: divergence guard, checkpoints
//!   through Burn's recorders, resume, evaluation).
//!
//! The crate depends on Burn, serde, thiserror, rand and rayon alone. Image datasets,
//! problem files, closed forms and the built-in models' runs live beside it, in the
//! `maml-data` crate.

pub mod algo;

// The README's first program, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub mod config;
pub mod data;
pub mod error;
pub mod model;
pub mod nn;
pub mod train;

pub use algo::learn::{Fast, MetaLoss, ModelMetaGradient, StepSizes};
pub use algo::learner::ModelLearner;
pub use config::{
    AdaptConfig, GradientPath, InnerOptimizer, Loss, MetaConfig, MetaOptimizer, Order,
};
pub use data::batch::{MetaBatch, Sets};
pub use data::families::TaskFamily;

pub use data::{SetData, TaskData};
pub use error::{MamlError, Result};

pub use model::{Learnable, MetaBackend, MetaModel, SecondOrder};

pub use train::any_model::{Evaluation, Trainer, TrainerConfig};

pub use train::guard::StepMetrics;
pub use train::schedule::{MetaLrScheduler, Schedule};
