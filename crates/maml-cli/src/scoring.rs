//! Scoring a checkpoint on given tasks, for every built-in model: the adaptation curve
//! (of the checkpoint, the pretrained baseline and a random initialisation) and each
//! task's query accuracy. Shared by `maml eval` and validation during training.

use burn::prelude::Backend;
use maml_burn::maml_core::{AdaptConfig, Loss, Order, TaskData};
use maml_burn::maml_data::model_trainer::eval_accuracy;
use maml_burn::maml_data::model_trainer::eval_curve;
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::stored::BuiltIn;
use maml_burn::maml_data::stored::ModelCheckpoint;
use maml_burn::maml_data::stored::ModelJob;
use maml_burn::maml_data::stored::StoredModel;

use crate::error::CliError;

/// The evaluation of one checkpoint on given tasks, for its model type.
pub(crate) struct EvalWork<'a, B: Backend> {
    pub(crate) checkpoint: &'a ModelCheckpoint,
    pub(crate) pretrained: Option<&'a StoredModel>,
    pub(crate) random: Option<&'a StoredModel>,
    pub(crate) tasks: &'a [TaskData],
    pub(crate) adapt: &'a AdaptConfig,
    pub(crate) curve: bool,
    pub(crate) device: &'a B::Device,
}

/// The curves of the checkpoint, the pretrained baseline and a random initialisation,
/// and each task's accuracy (classification).
pub(crate) struct Evaluated {
    pub(crate) maml: Vec<f64>,
    pub(crate) pretrained: Option<Vec<f64>>,
    pub(crate) random: Option<Vec<f64>>,
    pub(crate) accuracy: Option<Vec<f64>>,
}

impl<B: Backend> ModelJob<B> for EvalWork<'_, B> {
    type Output = Result<Evaluated, CliError>;

    fn run<M: BuiltIn<B>>(self) -> Self::Output {
        let (model, sizes) = (&self.checkpoint.model, self.checkpoint.sizes());
        let maml = if self.curve {
            eval_curve::<B, M>(model, sizes, self.tasks, self.adapt, self.device)?
        } else {
            Vec::new()
        };
        // The baselines learned no step sizes: they adapt by --inner-lr.
        let plain = self.adapt.clone().with_per_step_lr(false);
        let other = |init: Option<&StoredModel>| match init {
            Some(m) if self.curve => {
                eval_curve::<B, M>(m, None, self.tasks, &plain, self.device).map(Some)
            }
            _ => Ok(None),
        };
        let accuracy = (self.adapt.loss == Loss::CrossEntropy)
            .then(|| eval_accuracy::<B, M>(model, sizes, self.tasks, self.adapt, self.device))
            .transpose()?;
        Ok(Evaluated {
            maml,
            pretrained: other(self.pretrained)?,
            random: other(self.random)?,
            accuracy,
        })
    }
}

/// The test-time adaptation of a checkpoint: first order; its inner steps (sinusoids: at
/// least 10, as the paper's curves) unless given.
pub(crate) fn test_adapt(
    checkpoint: &ModelCheckpoint,
    inner_steps: Option<usize>,
    inner_lr: Option<f64>,
) -> AdaptConfig {
    let mut adapt = checkpoint
        .config
        .meta
        .adapt
        .clone()
        .with_order(Order::First);
    let default = match checkpoint.config.tasks {
        TaskSource::Sinusoid(_) => adapt.inner_steps.max(10),
        _ => adapt.inner_steps,
    };
    adapt.inner_steps = inner_steps.unwrap_or(default);
    if let Some(lr) = inner_lr {
        adapt.inner_lr = lr;
    }
    adapt
}
