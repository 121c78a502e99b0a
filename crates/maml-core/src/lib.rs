#![warn(missing_docs)]
//! # maml-core
//!
//! Exact first- and second-order MAML (and Meta-SGD) for any Burn model, generic over
//! Burn backends (`B: Backend`). The modules are layered, each importing only those
//! above it in this list:
//!
//! - [`config`], [`error`]: hyperparameters, checked once, up front; the one error type;
//! - [`data`]: problem and task files, task families, the tensors of a meta-batch;
//! - [`model`]: the seam ([`MetaModel`]: any `#[derive(Module)]` with a forward pass over
//!   a meta-batch) and the built-in models (the linear model, the MLP, the layered model
//!   of conv nets);
//! - [`nn`]: twice-differentiable layers with `burn::nn`'s shape of API (`Linear`,
//!   `Conv2d`, `BatchNorm` on the batch's statistics, pooling, `Flatten`), for models of
//!   the seam;
//! - [`algo`]: the inner loop and the meta-gradient, by nested autodiff (second order:
//!   [`SecondOrder`] = `Autodiff<Autodiff<B>>`) or by a model's hand-derived road;
//! - [`train`]: the trainer (divergence guard, resume, checkpoints, evaluation) and
//!   problems: a file of any version read as one [`Problem`] (a layer list, tasks and
//!   the inner loop), solved by [`solve`];
//! - [`closed_form`], [`trace`]: the linear model's meta-gradient and MAML optimum in
//!   closed form (independent checks), and everything the seed prints of a meta step.

pub mod algo;

// The README's first program, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub mod closed_form;
pub mod config;
pub mod data;
pub mod error;
pub mod model;
pub mod nn;
pub mod trace;
pub mod train;

pub use algo::implicit::implicit_meta_gradient;
pub use algo::learn::{
    Fast, ModelMetaGradient, adapt_model, autodiff_meta_gradient, model_adaptation_curve,
    model_meta_gradient, model_meta_gradient_by, query_accuracies,
};
pub use algo::learner::{ConfiguredOptimizer, MetaLoss, ModelLearner};
pub use config::{
    AdaptConfig, Algorithm, GradientPath, Imaml, Loss, MetaConfig, MetaOptimizer, Order,
};
pub use data::batch::{MetaBatch, Sets, shard_range};
pub use data::families::{
    BlobsFamily, FixedTasks, LinearFamily, SeedFamily, Sinusoid, SinusoidFamily, TaskFamily,
};
pub use data::few_shot::{FewShotFamily, ImageSource};
pub use data::images::{ImageClass, ImageClasses, OneShotRun, load_runs};
pub use data::layers::{Array, ExampleShape, LayerSpec, LayerWeights, LayeredSpec, LayeredWeights};
pub use data::{LinearAnswer, LinearWeights, SetData, TaskData};
pub use error::{MamlError, Result};
pub use model::layered::{Layer, Layered};
pub use model::mlp::{Activation, Mlp, MlpConfig, MlpWeights, TaskLinear};
pub use model::presets::{ConvNet, ConvNetConfig, ModelConfig};
pub use model::{Learnable, MetaBackend, MetaModel, SecondOrder, is_tracked};
pub use trace::{MetaStepTrace, trace_meta_step};
pub use train::model_trainer::{
    EvalReport, ModelTrainer, adapted_predictions, eval_accuracy, eval_curve, evaluate,
};
pub use train::problem::{Answer, InnerLr, ModelSpec, Problem, ProblemFormat};
pub use train::solve::{finite_differences, solve, solve_by};
pub use train::stored::{BuiltIn, ModelCheckpoint, ModelJob, ModelKind, StoredModel};
pub use train::trainer::{StepMetrics, TaskSource, TrainConfig};
