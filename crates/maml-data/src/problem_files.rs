//! The problem files of every version (`docs/problem-schema.md`) read into one
//! [`Problem`]: version 1 (the linear model's `weight` and `bias`) as a list of one
//! linear layer, version 2 (`model.layers` and `activation`) as linear layers with the
//! activation between every two, version 3 (`model.input` and `model.layers`) as any
//! layer list; each checked as it is read, every message naming the value.

use std::path::Path;

use serde::Deserialize;

use crate::family::Family;
use crate::problem::{InnerLr, ModelSpec, Problem, ProblemFormat};
use maml_core::config::{AdaptConfig, Imaml, InnerOptimizer, Loss, Order, check_lr};
use maml_core::data::layers::{Array, LayerSpec, LayeredSpec};
use maml_core::data::{LinearWeights, SetData, TaskData, read_text, validate_tasks};
use maml_core::error::{MamlError, Result};
use maml_core::model::mlp::MlpWeights;

impl Problem {
    /// Parses and validates a problem of any version (version 3 has `model.input`,
    /// version 2 `model`, version 1 `weight` and `bias`); `source_name` names it in
    /// errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self> {
        let json = |e: serde_json::Error| MamlError::json(source_name, &e);
        let value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
        let version = value.get("version");
        if let Some(v) = version
            && !matches!(v.as_u64(), Some(3 | 4))
        {
            return Err(MamlError::UnknownName {
                kind: "problem version",
                value: v.to_string(),
                expected: "3 4 (or no version field: versions 1 to 3)",
            });
        }
        let problem =
            if version.is_some() || value.get("model").and_then(|m| m.get("input")).is_some() {
                serde_json::from_str::<FileV3>(text)
                    .map_err(json)?
                    .into_problem()?
            } else if value.get("model").is_some() {
                serde_json::from_str::<FileV2>(text)
                    .map_err(json)?
                    .into_problem()?
            } else {
                serde_json::from_str::<FileV1>(text)
                    .map_err(json)?
                    .into_problem()?
            };
        problem.validate()?;
        Ok(problem)
    }

    /// Reads, parses and validates a problem file of any version.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json(&read_text(path)?, &path.display().to_string())
    }
}

/// A version-1 file: the linear model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    weight: Vec<Vec<f64>>,
    bias: Vec<f64>,
    tasks: Vec<TaskData>,
    inner_lr: f64,
    inner_steps: usize,
    order: Order,
    loss: Loss,
}

impl FileV1 {
    fn into_problem(self) -> Result<Problem> {
        let init = LinearWeights {
            weight: self.weight,
            bias: self.bias,
        };
        init.validate("problem")?;
        let adapt = AdaptConfig::new(self.inner_lr)
            .with_inner_steps(self.inner_steps)
            .with_order(self.order)
            .with_loss(self.loss);
        adapt.validate_linear()?;
        validate_tasks(&self.tasks, init.d_in(), init.d_out())?;
        Ok(Problem::linear(&init, self.tasks, &adapt))
    }
}

/// Targets of a set: rows (`sse`, `mse`) or class indices (`cross_entropy`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Targets {
    Rows(Vec<Vec<f64>>),
    Labels(Vec<f64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetV2 {
    x: Vec<Vec<f64>>,
    #[serde(default)]
    y: Option<Targets>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskV2 {
    support: SetV2,
    query: SetV2,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InnerLrV2 {
    Scalar(f64),
    PerParameter(MlpWeights),
}

/// A version-2 file: an MLP, Meta-SGD, classification.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV2 {
    model: ModelSpec,
    tasks: Vec<TaskV2>,
    inner_lr: InnerLrV2,
    inner_steps: usize,
    order: Order,
    loss: Loss,
    #[serde(default)]
    imaml: Option<Imaml>,
    #[serde(default)]
    inner_checkpoint_every: Option<usize>,
}

impl FileV2 {
    fn into_problem(self) -> Result<Problem> {
        let weights = self.model.weights();
        weights.validate("model")?;
        let inner_lr = match self.inner_lr {
            InnerLrV2::Scalar(lr) => {
                check_lr("inner_lr", lr)?;
                InnerLr::Scalar(lr)
            }
            InnerLrV2::PerParameter(sizes) => {
                sizes.validate("inner_lr")?;
                weights.check_same_shape(&sizes, "inner_lr")?;
                InnerLr::PerParameter(sizes.to_layered())
            }
        };
        let tasks = self
            .tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("tasks[{i}]");
                let (classes, loss) = (weights.d_out(), self.loss);
                Ok(TaskData {
                    support: set_data(t.support, loss, classes, &format!("{at}.support"))?,
                    query: set_data(t.query, loss, classes, &format!("{at}.query"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        validate_tasks(&tasks, weights.d_in(), weights.d_out())?;
        Ok(Problem {
            model: weights.to_spec(self.model.activation),
            tasks,
            inner_lr,
            inner_steps: self.inner_steps,
            order: self.order,
            loss: self.loss,
            imaml: self.imaml,
            inner_checkpoint_every: self.inner_checkpoint_every,
            family: Family::default(),
            format: ProblemFormat::Mlp,
        })
    }
}

/// A support or query set of a version-3 file: `x [n, C, H, W]` (or `[n, F]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetV3 {
    x: Array,
    #[serde(default)]
    y: Option<Targets>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskV3 {
    support: SetV3,
    query: SetV3,
}

/// A version-3 file: a layer list (conv nets, batch norm, pooling) on images or vectors;
/// version 4 adds the family's fields ([`crate::family`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV3 {
    #[serde(default)]
    version: Option<u64>,
    model: LayeredSpec,
    tasks: Vec<TaskV3>,
    inner_lr: InnerLr,
    inner_steps: usize,
    order: Order,
    loss: Loss,
    #[serde(default)]
    imaml: Option<Imaml>,
    #[serde(default)]
    inner_checkpoint_every: Option<usize>,
    #[serde(default)]
    inner_optimizer: Option<InnerOptimizer>,
    #[serde(default)]
    inner_layers: Option<Vec<usize>>,
    #[serde(default)]
    step_loss_weights: Option<Vec<f64>>,
    #[serde(default)]
    algorithm: Option<String>,
}

impl FileV3 {
    /// The family's fields, refused in a file that does not say `"version": 4`.
    fn family(&mut self) -> Result<Family> {
        let given = [
            ("inner_optimizer", self.inner_optimizer.is_some()),
            ("inner_layers", self.inner_layers.is_some()),
            ("step_loss_weights", self.step_loss_weights.is_some()),
            ("algorithm", self.algorithm.is_some()),
            (
                "inner_lr.per_step",
                matches!(self.inner_lr, InnerLr::PerStep(_)),
            ),
            (
                "model.layers[..].per_step",
                self.model
                    .layers
                    .iter()
                    .any(|l| matches!(l, LayerSpec::BatchNorm { per_step: true, .. })),
            ),
        ];
        if self.version != Some(4)
            && let Some((name, _)) = given.iter().find(|(_, on)| *on)
        {
            return Err(MamlError::InvalidHyperparameter {
                name,
                value: "given".into(),
                reason: "is a version-4 field: the file must say \"version\": 4",
            });
        }
        let reptile = match self.algorithm.as_deref() {
            None | Some("maml") => false,
            Some("reptile") => true,
            Some(other) => {
                return Err(MamlError::UnknownName {
                    kind: "algorithm",
                    value: other.into(),
                    expected: "maml reptile",
                });
            }
        };
        Ok(Family {
            inner_optimizer: self.inner_optimizer.unwrap_or_default(),
            inner_layers: self.inner_layers.take(),
            step_loss_weights: self.step_loss_weights.take(),
            reptile,
        })
    }
}

impl FileV3 {
    fn into_problem(mut self) -> Result<Problem> {
        let family = self.family()?;
        let d_out = self.model.validate()?;
        let input = self.model.input.clone();
        let d_in: usize = input.iter().product();
        let rows = |set: SetV3, at: &str| -> Result<SetData> {
            let n = set.x.shape.first().copied().unwrap_or(0);
            if n == 0 {
                return Err(MamlError::Empty {
                    location: format!("{at}.x"),
                    detail: "a support or query set needs at least one example",
                });
            }
            let mut shape = vec![n];
            shape.extend_from_slice(&input);
            set.x.check(&shape, &format!("{at}.x"))?;
            let x = set.x.values.chunks(d_in).map(<[f64]>::to_vec).collect();
            set_data(SetV2 { x, y: set.y }, self.loss, d_out, at)
        };
        let tasks = self
            .tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("tasks[{i}]");
                Ok(TaskData {
                    support: rows(t.support, &format!("{at}.support"))?,
                    query: rows(t.query, &format!("{at}.query"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Problem {
            model: self.model,
            tasks,
            inner_lr: self.inner_lr,
            inner_steps: self.inner_steps,
            order: self.order,
            loss: self.loss,
            imaml: self.imaml,
            inner_checkpoint_every: self.inner_checkpoint_every,
            family,
            format: if self.version == Some(4) {
                ProblemFormat::Family
            } else {
                ProblemFormat::Layered
            },
        })
    }
}

/// A set's rows, class labels one-hot encoded into `classes` columns for `cross_entropy`.
fn set_data(set: SetV2, loss: Loss, classes: usize, at: &str) -> Result<SetData> {
    let wrong = |detail: String| MamlError::Shape {
        location: format!("{at}.y"),
        detail,
    };
    let y = match (set.y, loss) {
        (None, Loss::CrossEntropy) => {
            return Err(wrong("cross_entropy needs class labels".into()));
        }
        (None, _) => None,
        (Some(Targets::Rows(rows)), Loss::Sse | Loss::Mse) => Some(rows),
        (Some(Targets::Labels(labels)), Loss::CrossEntropy) => Some(one_hot(&labels, classes, at)?),
        (Some(Targets::Labels(_)), _) => {
            return Err(wrong(format!(
                "class labels given, but the loss {loss} needs target rows [n][out]"
            )));
        }
        (Some(Targets::Rows(_)), Loss::CrossEntropy) => {
            return Err(wrong(
                "cross_entropy needs class labels [n], not rows".into(),
            ));
        }
    };
    Ok(SetData { x: set.x, y })
}

/// One-hot rows for class labels `0..classes`.
fn one_hot(labels: &[f64], classes: usize, at: &str) -> Result<Vec<Vec<f64>>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            if label.fract() != 0.0 || label < 0.0 || label >= classes as f64 {
                return Err(MamlError::Shape {
                    location: format!("{at}.y[{i}]"),
                    detail: format!("class label {label} is not an integer in 0..{classes}"),
                });
            }
            let mut row = vec![0.0; classes];
            row[label as usize] = 1.0;
            Ok(row)
        })
        .collect()
}
