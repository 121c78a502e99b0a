#![warn(missing_docs)]
//! # maml-core
//!
//! Exact first- and second-order MAML for a linear model `y = x W^T + b`, an MLP and
//! any Burn model, generic over Burn backends (`B: Backend`).
//!
//! - [`maml::adapt`]: the inner loop, `K` gradient steps on each task's support set;
//! - [`maml::meta_gradient`]: the outer loop's gradient of the mean query loss with
//!   respect to the initial weights, first order (inner gradients detached) or second
//!   order (through every inner gradient, by nesting Burn's autodiff decorator:
//!   [`maml::SecondOrder`]);
//! - [`learner::MetaLearner`]: meta-updates with SGD or Adam;
//! - [`closed_form`]: the same quantities in closed form, in f64, independent of autodiff;
//! - [`trace::trace_meta_step`]: everything the seed prints about one meta step;
//! - [`learn`]: the same for any model ([`learn::ModelLearner`], nested autodiff), and
//!   [`analytic`]: the built-in MLP's meta-gradient by hand-derived back-propagation with
//!   exact Hessian-vector products ([`learn::GradientPath`]).

pub mod analytic;
pub mod batch;
pub mod closed_form;
pub mod config;
pub mod data;
pub mod error;
pub mod families;
pub mod learn;
pub mod learner;
pub mod maml;
pub mod model;
pub mod model_train;
pub mod models;
pub mod module;
pub mod problem2;
pub mod tasks;
pub mod trace;
pub mod train;

pub use batch::{MetaBatch, Sets};
pub use config::{AdaptConfig, Loss, Order};
pub use data::{Answer, LinearWeights, Problem, SetData, TaskData};
pub use error::{MamlError, Result};
pub use families::{
    BlobsFamily, FixedTasks, LinearFamily, SeedFamily, Sinusoid, SinusoidFamily, TaskFamily,
};
pub use learn::{
    Fast, GradientPath, ModelLearner, ModelMetaGradient, adapt_model, autodiff_meta_gradient,
    model_adaptation_curve, model_meta_gradient, model_meta_gradient_by, shard_range,
};
pub use learner::{MetaConfig, MetaLearner, MetaOptimizer};
pub use maml::{
    FastWeights, MetaBackend, MetaGradient, SecondOrder, adapt, adaptation_curve, is_tracked,
    meta_gradient, meta_gradient_by, solve, solve_by,
};
pub use model::LinearModel;
pub use model_train::{
    MlpCheckpoint, MlpConfig, MlpTrainer, mlp_adapted_predictions, mlp_eval_curve,
};
pub use models::{Activation, Mlp, MlpWeights, TaskLinear};
pub use module::{Learnable, MetaModel};
pub use problem2::{
    AnswerV2, AnyAnswer, AnyProblem, InnerLr, ModelSpec, ProblemV2, finite_differences_v2,
    solve_v2, solve_v2_by,
};
pub use tasks::{SetBatch, TaskBatch};
pub use trace::{MetaStepTrace, trace_meta_step};
pub use train::{Checkpoint, EvalReport, StepMetrics, TaskSource, TrainConfig, Trainer, evaluate};
