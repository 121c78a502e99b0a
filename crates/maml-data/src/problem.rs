//! Problem files (`docs/problem-schema.md`): everything one meta-gradient depends on, read
//! from a file of any version into one [`Problem`] whose model is a layer list. Version 1
//! (the linear model's `weight` and `bias`) is a list of one linear layer, version 2
//! (`model.layers` and `activation`) linear layers with the activation between every two,
//! version 3 (`model.input` and `model.layers`) any layer list. Answers of every version
//! read into one [`Answer`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::family::{Family, PerStepFile};
use maml_core::config::{AdaptConfig, Imaml, Loss, Order, check_lr};
use maml_core::data::layers::{LayerWeights, LayeredSpec, LayeredWeights};
use maml_core::data::{LinearAnswer, LinearWeights, TaskData, read_json, validate_tasks};
use maml_core::error::Result;
use maml_core::model::mlp::{Activation, MlpWeights};

/// The layout of the file a problem was read from; its answer is written in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProblemFormat {
    /// Version 1, the linear model: answers have `meta_grad.weight` and `meta_grad.bias`.
    Linear,
    /// Version 2, an MLP: answers list the linear layers only.
    Mlp,
    /// Version 3, a layer list: answers have `{}` for layers without parameters.
    #[default]
    Layered,
    /// Version 4, a layer list with the family's fields: the step sizes' gradient, if
    /// any, is written per step (`inner_lr_grad.per_step`).
    Family,
}

/// `inner_lr`: one step size, one per parameter entry (Meta-SGD), or one per inner step
/// and layer parameter (MAML++'s LSLR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InnerLr {
    /// The same step size for every parameter (MAML).
    Scalar(f64),
    /// One step size per entry, in the layout of the model's layer list (Meta-SGD).
    PerParameter(LayeredWeights),
    /// One step size per inner step for each adapted layer's weight and bias, as a layer
    /// list of `[K]` arrays (`{}` for layers the inner loop does not adapt); written as
    /// `{"per_step": [[{weight, bias} | {}; layers]; K]}`.
    #[serde(with = "per_step_serde")]
    PerStep(LayeredWeights),
}

mod per_step_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::family::PerStepFile;
    use maml_core::data::layers::LayeredWeights;

    pub fn serialize<S: Serializer>(sizes: &LayeredWeights, s: S) -> Result<S::Ok, S::Error> {
        PerStepFile::from_layered(sizes).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LayeredWeights, D::Error> {
        let file = PerStepFile::deserialize(d)?;
        let layers = file.per_step.first().map_or(0, Vec::len);
        file.to_layered(layers, "inner_lr")
            .map_err(serde::de::Error::custom)
    }
}

/// A problem: a model (a layer list with its initial weights), tasks and the inner loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The model and its initial weights.
    pub model: LayeredSpec,
    /// The tasks, each example flattened to a row of `C·H·W` (or `F`) numbers, one-hot
    /// target rows for `cross_entropy`; the meta-loss is the mean of their query losses.
    pub tasks: Vec<TaskData>,
    /// Inner step size(s).
    pub inner_lr: InnerLr,
    /// Number of inner steps (0: no adaptation).
    pub inner_steps: usize,
    /// First or second order.
    pub order: Order,
    /// `sse`, `mse` or `cross_entropy`.
    pub loss: Loss,
    /// Implicit MAML's λ and conjugate-gradient steps (`"imaml"` in version 2 and 3
    /// files); `None`: MAML.
    pub imaml: Option<Imaml>,
    /// Gradient checkpointing of the inner loop (`"inner_checkpoint_every"` in version 2 and
    /// 3 files, [`AdaptConfig::inner_checkpoint_every`]); `None`: every step kept.
    pub inner_checkpoint_every: Option<usize>,
    /// The family's parts (version 4): inner optimizer, adapted layers, multi-step
    /// loss, Reptile.
    pub family: Family,
    /// The layout its answer is written in.
    pub format: ProblemFormat,
}

impl Problem {
    /// The problem of `model` on `tasks` with `adapt`'s inner loop (one step size; not
    /// validated: [`Self::validate`]).
    pub fn new(model: LayeredSpec, tasks: Vec<TaskData>, adapt: &AdaptConfig) -> Self {
        Self {
            model,
            tasks,
            inner_lr: InnerLr::Scalar(adapt.inner_lr),
            inner_steps: adapt.inner_steps,
            order: adapt.order,
            loss: adapt.loss,
            imaml: adapt.imaml.clone(),
            inner_checkpoint_every: adapt.inner_checkpoint_every,
            family: Family::default(),
            format: ProblemFormat::Layered,
        }
    }

    /// The linear model's problem: initial weights `init` (a layer list of one linear
    /// layer), written in version 1's layout.
    pub fn linear(init: &LinearWeights, tasks: Vec<TaskData>, adapt: &AdaptConfig) -> Self {
        let model = MlpWeights {
            layers: vec![init.clone()],
        }
        .to_spec(Activation::Relu);
        Self {
            format: ProblemFormat::Linear,
            ..Self::new(model, tasks, adapt)
        }
    }

    /// The initial weights when the model is the linear model (one linear layer on
    /// vectors).
    pub fn linear_weights(&self) -> Option<LinearWeights> {
        match MlpWeights::from_spec(&self.model) {
            Some((mut mlp, _)) if mlp.layers.len() == 1 => mlp.layers.pop(),
            _ => None,
        }
    }

    /// The inner-loop configuration; for learned sizes ([`InnerLr::PerParameter`],
    /// [`InnerLr::PerStep`]) the step size 1.0 stands in for them.
    pub fn adapt_config(&self) -> AdaptConfig {
        let (lr, meta_sgd, per_step) = match &self.inner_lr {
            InnerLr::Scalar(lr) => (*lr, false, false),
            InnerLr::PerParameter(_) => (1.0, true, false),
            InnerLr::PerStep(_) => (1.0, false, true),
        };
        let family = &self.family;
        let inner_params = family.inner_layers.as_ref().map(|layers| {
            let count = self.model.layers.len();
            let mut adapted = vec![false; count];
            for &l in layers.iter().filter(|&&l| l < count) {
                adapted[l] = true;
            }
            crate::family::param_indices(&self.model, &adapted)
        });
        AdaptConfig::new(lr)
            .with_inner_steps(self.inner_steps)
            .with_order(self.order)
            .with_loss(self.loss)
            .with_meta_sgd(meta_sgd)
            .with_imaml(self.imaml.clone())
            .with_inner_checkpoint_every(self.inner_checkpoint_every)
            .with_inner_optimizer(family.inner_optimizer)
            .with_inner_params(inner_params)
            .with_step_loss_weights(family.step_loss_weights.clone())
            .with_per_step_lr(per_step)
            .with_reptile(family.reptile)
    }

    /// Checks the layer list, the step sizes and every task against the model's input
    /// and output widths; returns the output width.
    pub fn validate(&self) -> Result<usize> {
        let d_out = self.model.validate()?;
        let d_in = self.model.d_in()?;
        let adapted =
            crate::family::adapted_layers(&self.model, self.family.inner_layers.as_deref())?;
        match &self.inner_lr {
            InnerLr::Scalar(lr) => check_lr("inner_lr", *lr)?,
            InnerLr::PerParameter(sizes) => sizes.check_like(&self.model.weights(), "inner_lr")?,
            InnerLr::PerStep(sizes) => {
                crate::family::check_per_step(sizes, &self.model, &adapted, self.inner_steps)?
            }
        }
        crate::family::check_per_step_norms(&self.model, self.inner_steps)?;
        validate_tasks(&self.tasks, d_in, d_out)?;
        self.adapt_config().validate()?;
        Ok(d_out)
    }
}

/// The answer to a problem: meta-loss, meta-gradient (and Meta-SGD's step-size gradient)
/// and each task's fast weights, in the layout of the model's layer list. It reads an
/// answer file of any version (version 1's `weight` and `bias` as one layer, version 2's
/// linear layers as they are: comparisons skip layers without parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AnswerFile")]
pub struct Answer {
    /// Mean query loss of the fast weights over the tasks.
    pub meta_loss: f64,
    /// Derivative of the meta-loss with respect to the initial weights.
    pub meta_grad: LayeredWeights,
    /// Derivative with respect to the per-parameter step sizes (Meta-SGD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_lr_grad: Option<LayeredWeights>,
    /// `theta_K` for each task, in order.
    pub fast_weights: Vec<LayeredWeights>,
}

impl Answer {
    /// Reads an answer file of any version.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path.as_ref())
    }

    /// The answer in the linear model's layout, when the model has one linear layer.
    pub fn to_linear(&self) -> Option<LinearAnswer> {
        let linear = |w: &LayeredWeights| -> Option<LinearWeights> {
            match &w.parameters_only().layers[..] {
                [layer] => LinearWeights::from_layer(layer),
                _ => None,
            }
        };
        Some(LinearAnswer {
            meta_loss: self.meta_loss,
            meta_grad: linear(&self.meta_grad)?,
            fast_weights: self
                .fast_weights
                .iter()
                .map(linear)
                .collect::<Option<_>>()?,
        })
    }

    /// The answer as JSON in the layout of a problem file's version.
    pub fn to_json(&self, format: ProblemFormat) -> serde_json::Value {
        let value = match (format, self.to_linear()) {
            (ProblemFormat::Linear, Some(linear)) => serde_json::to_value(linear),
            (ProblemFormat::Mlp, _) => serde_json::to_value(Self {
                meta_loss: self.meta_loss,
                meta_grad: self.meta_grad.parameters_only(),
                inner_lr_grad: self.inner_lr_grad.as_ref().map(|g| g.parameters_only()),
                fast_weights: self
                    .fast_weights
                    .iter()
                    .map(LayeredWeights::parameters_only)
                    .collect(),
            }),
            (ProblemFormat::Family, _) if self.inner_lr_grad.is_some() => {
                let mut value = serde_json::to_value(self);
                if let (Ok(v), Some(grad)) = (&mut value, &self.inner_lr_grad) {
                    v["inner_lr_grad"] = serde_json::to_value(PerStepFile::from_layered(grad))
                        .expect("finite step sizes serialise to JSON");
                }
                value
            }
            _ => serde_json::to_value(self),
        };
        value.expect("an answer of finite numbers serialises to JSON")
    }
}

impl From<LinearAnswer> for Answer {
    fn from(answer: LinearAnswer) -> Self {
        let layered = |w: &LinearWeights| LayeredWeights {
            layers: vec![w.to_layer()],
        };
        Self {
            meta_loss: answer.meta_loss,
            meta_grad: layered(&answer.meta_grad),
            inner_lr_grad: None,
            fast_weights: answer.fast_weights.iter().map(layered).collect(),
        }
    }
}

/// Weights in an answer file: a layer list (versions 2 and 3) or one linear layer's
/// `weight` and `bias` (version 1).
#[derive(Deserialize)]
#[serde(untagged)]
enum FileWeights {
    Layers(LayeredWeights),
    Linear(LayerWeights),
    PerStep(PerStepFile),
}

impl From<FileWeights> for LayeredWeights {
    fn from(weights: FileWeights) -> Self {
        match weights {
            FileWeights::Layers(w) => w,
            FileWeights::PerStep(file) => {
                let layers = file.per_step.first().map_or(0, Vec::len);
                file.to_layered(layers, "inner_lr_grad").unwrap_or_default()
            }
            FileWeights::Linear(layer) => Self {
                layers: vec![layer],
            },
        }
    }
}

#[derive(Deserialize)]
struct AnswerFile {
    meta_loss: f64,
    meta_grad: FileWeights,
    #[serde(default)]
    inner_lr_grad: Option<FileWeights>,
    fast_weights: Vec<FileWeights>,
}

impl From<AnswerFile> for Answer {
    fn from(file: AnswerFile) -> Self {
        Self {
            meta_loss: file.meta_loss,
            meta_grad: file.meta_grad.into(),
            inner_lr_grad: file.inner_lr_grad.map(Into::into),
            fast_weights: file.fast_weights.into_iter().map(Into::into).collect(),
        }
    }
}

/// The model of a version-2 problem (and of version-2 MLP checkpoints): linear layers
/// with one activation between every two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The layers, input first (`weight [out][in]`, `bias [out]`).
    pub layers: Vec<LinearWeights>,
    /// The activation after every layer but the last.
    pub activation: Activation,
}

impl ModelSpec {
    /// The layers as MLP weights.
    pub fn weights(&self) -> MlpWeights {
        MlpWeights {
            layers: self.layers.clone(),
        }
    }
}
