//! Problem files of version 2 (`shared/reference/problem-schema.md`, "Version 2"): a
//! multi-layer perceptron, a scalar or per-parameter (Meta-SGD) `inner_lr`, and
//! `sse` / `mse` / `cross_entropy` losses (version 3 is [`crate::train::problems_v3`],
//! a file of any version [`crate::train::any_problem::AnyProblem`]).

use std::path::Path;

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algo::learn::{Fast, ModelLearner};
use crate::config::GradientPath;
use crate::config::MetaConfig;
use crate::config::{AdaptConfig, Loss, Order};
use crate::data::batch::MetaBatch;
use crate::data::{Answer, LinearWeights, Problem, SetData, TaskData};
use crate::error::{MamlError, Result};
use crate::model::check_device_precision;
use crate::model::mlp::{Activation, Mlp, MlpWeights};
use crate::model::{MetaBackend, SecondOrder};

/// The model of a version-2 problem.
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

/// `inner_lr`: one step size, or one per parameter entry (Meta-SGD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InnerLr {
    /// The same step size for every parameter.
    Scalar(f64),
    /// One step size per weight and bias entry, in the model's layout.
    PerParameter(MlpWeights),
}

/// Targets of a version-2 set: rows (`sse`, `mse`) or class indices (`cross_entropy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    /// `[n][out]`.
    Rows(Vec<Vec<f64>>),
    /// `[n]` class indices.
    Labels(Vec<f64>),
}

/// A support or query set of a version-2 problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetV2 {
    /// Features, `[n][in]`.
    pub x: Vec<Vec<f64>>,
    /// Targets; absent means zero (regression only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Targets>,
}

/// A task of a version-2 problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskV2 {
    /// The support set.
    pub support: SetV2,
    /// The query set.
    pub query: SetV2,
}

/// A version-2 problem file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemV2 {
    /// The model and its initial weights.
    pub model: ModelSpec,
    /// The tasks.
    pub tasks: Vec<TaskV2>,
    /// Inner step size(s).
    pub inner_lr: InnerLr,
    /// Number of inner steps (0: no adaptation).
    pub inner_steps: usize,
    /// First or second order.
    pub order: Order,
    /// `sse`, `mse` or `cross_entropy`.
    pub loss: Loss,
}

/// Converts a set, one-hot encoding class labels into `classes` columns.
pub fn set_from_v2(set: &SetV2, loss: Loss, classes: usize, location: &str) -> Result<SetData> {
    let y = match (&set.y, loss) {
        (None, Loss::CrossEntropy) => {
            return Err(MamlError::Shape {
                location: format!("{location}.y"),
                detail: "cross_entropy needs class labels".into(),
            });
        }
        (None, _) => None,
        (Some(Targets::Rows(rows)), Loss::Sse | Loss::Mse) => Some(rows.clone()),
        (Some(Targets::Labels(labels)), Loss::CrossEntropy) => {
            Some(one_hot(labels, classes, location)?)
        }
        (Some(Targets::Labels(_)), _) => {
            return Err(MamlError::Shape {
                location: format!("{location}.y"),
                detail: format!(
                    "class labels given, but the loss {loss} needs target rows [n][out]"
                ),
            });
        }
        (Some(Targets::Rows(_)), Loss::CrossEntropy) => {
            return Err(MamlError::Shape {
                location: format!("{location}.y"),
                detail: "cross_entropy needs class labels [n], not rows".into(),
            });
        }
    };
    Ok(SetData {
        x: set.x.clone(),
        y,
    })
}

/// One-hot rows for class labels `0..classes`.
pub fn one_hot(labels: &[f64], classes: usize, location: &str) -> Result<Vec<Vec<f64>>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            if label.fract() != 0.0 || label < 0.0 || label >= classes as f64 {
                return Err(MamlError::Shape {
                    location: format!("{location}.y[{i}]"),
                    detail: format!("class label {label} is not an integer in 0..{classes}"),
                });
            }
            let mut row = vec![0.0; classes];
            row[label as usize] = 1.0;
            Ok(row)
        })
        .collect()
}

/// The inner-loop configuration of a problem file: a scalar `inner_lr`, or `None` for
/// Meta-SGD's per-parameter sizes (the learner's starting value 1.0 is then replaced by
/// them).
pub(crate) fn problem_adapt_config(
    scalar_lr: Option<f64>,
    inner_steps: usize,
    order: Order,
    loss: Loss,
) -> AdaptConfig {
    AdaptConfig::new(scalar_lr.unwrap_or(1.0))
        .with_inner_steps(inner_steps)
        .with_order(order)
        .with_loss(loss)
        .with_meta_sgd(scalar_lr.is_none())
}

impl ProblemV2 {
    /// The inner-loop configuration (Meta-SGD's step sizes come from [`Self::inner_lr`]).
    pub fn adapt_config(&self) -> AdaptConfig {
        let scalar = match &self.inner_lr {
            InnerLr::Scalar(lr) => Some(*lr),
            InnerLr::PerParameter(_) => None,
        };
        problem_adapt_config(scalar, self.inner_steps, self.order, self.loss)
    }

    /// The tasks with one-hot targets for `cross_entropy`, validated.
    pub fn task_data(&self) -> Result<Vec<TaskData>> {
        let weights = self.model.weights();
        weights.validate("model")?;
        let (d_in, d_out) = (weights.d_in(), weights.d_out());
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("tasks[{i}]");
                Ok(TaskData {
                    support: set_from_v2(&t.support, self.loss, d_out, &format!("{at}.support"))?,
                    query: set_from_v2(&t.query, self.loss, d_out, &format!("{at}.query"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        crate::data::validate_tasks(&tasks, d_in, d_out)?;
        Ok(tasks)
    }

    /// Checks shapes, finiteness and hyperparameters.
    pub fn validate(&self) -> Result<()> {
        let weights = self.model.weights();
        weights.validate("model")?;
        match &self.inner_lr {
            InnerLr::Scalar(lr) => crate::config::check_lr("inner_lr", *lr)?,
            InnerLr::PerParameter(sizes) => {
                sizes.validate("inner_lr")?;
                weights.check_same_shape(sizes, "inner_lr")?;
            }
        }
        self.task_data().map(|_| ())
    }
}

/// The answer to a version-2 problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerV2 {
    /// Mean query loss of the fast weights over the tasks.
    pub meta_loss: f64,
    /// Derivative of the meta-loss with respect to the initial weights.
    pub meta_grad: MlpWeights,
    /// Derivative with respect to the per-parameter step sizes (Meta-SGD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_lr_grad: Option<MlpWeights>,
    /// `theta_K` for each task, in order.
    pub fast_weights: Vec<MlpWeights>,
}

impl AnswerV2 {
    /// Reads an answer file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        crate::data::read_json(path.as_ref())
    }
}

/// The MLP's layers read from gradients registered under its parameter ids.
pub(crate) fn weights_from_grads<A: Backend, G: Backend>(
    model: &Mlp<A>,
    grads: &GradientsParams,
) -> MlpWeights {
    let read = |id, shape: [usize; 3]| -> Vec<f64> {
        grads
            .get::<G, 3>(id)
            .map(|g| g.into_data().iter::<f64>().collect())
            .unwrap_or_else(|| vec![0.0; shape.iter().product()])
    };
    MlpWeights {
        layers: model
            .layers
            .iter()
            .map(|layer| {
                let [_, d_in, d_out] = layer.weight.dims();
                let w = read(layer.weight.id, [1, d_in, d_out]);
                let b = read(layer.bias.id, [1, 1, d_out]);
                LinearWeights {
                    weight: (0..d_out)
                        .map(|o| (0..d_in).map(|i| w[i * d_out + o]).collect())
                        .collect(),
                    bias: b,
                }
            })
            .collect(),
    }
}

/// Solves a version-2 problem on backend `B` ([`GradientPath::Auto`]: hand-derived
/// back-propagation for the MLP).
pub fn solve_v2<B: Backend>(problem: &ProblemV2, device: &B::Device) -> Result<AnswerV2> {
    solve_v2_by::<B>(problem, GradientPath::Auto, device)
}

/// Solves a version-2 problem on backend `B`, taking the meta-gradient by `path`.
pub fn solve_v2_by<B: Backend>(
    problem: &ProblemV2,
    path: GradientPath,
    device: &B::Device,
) -> Result<AnswerV2> {
    problem.validate()?;
    let sizes = match &problem.inner_lr {
        InnerLr::PerParameter(sizes) => Some(sizes),
        InnerLr::Scalar(_) => None,
    };
    let tasks = problem.task_data()?;
    let model = (&problem.model.weights(), problem.model.activation);
    solve_mlp::<B>(model, sizes, &tasks, problem.adapt_config(), path, device)
}

/// Solves a version-1 problem (the linear model: an MLP of one layer) on backend `B`
/// ([`GradientPath::Auto`]: the linear model's affine inner steps, by hand).
pub fn solve<B: Backend>(problem: &Problem, device: &B::Device) -> Result<Answer> {
    solve_by::<B>(problem, GradientPath::Auto, device)
}

/// Solves a version-1 problem on backend `B`, taking the meta-gradient by `path`.
pub fn solve_by<B: Backend>(
    problem: &Problem,
    path: GradientPath,
    device: &B::Device,
) -> Result<Answer> {
    problem.validate()?;
    let weights = MlpWeights {
        layers: vec![problem.initial_weights()],
    };
    let model = (&weights, Activation::Relu);
    let answer = solve_mlp::<B>(
        model,
        None,
        &problem.tasks,
        problem.adapt_config(),
        path,
        device,
    )?;
    let linear = |mut w: MlpWeights| w.layers.remove(0);
    Ok(Answer {
        meta_loss: answer.meta_loss,
        meta_grad: linear(answer.meta_grad),
        fast_weights: answer.fast_weights.into_iter().map(linear).collect(),
    })
}

/// The meta-gradient of an MLP (`weights`, `activation`; Meta-SGD: step sizes `sizes`)
/// on validated `tasks`, taken by `path`, in the answer layout.
fn solve_mlp<B: Backend>(
    (weights, activation): (&MlpWeights, Activation),
    sizes: Option<&MlpWeights>,
    tasks: &[TaskData],
    adapt: AdaptConfig,
    path: GradientPath,
    device: &B::Device,
) -> Result<AnswerV2> {
    check_device_precision::<B>(device)?;
    let model = Mlp::<B>::from_weights(weights, activation, device);
    let mut learner =
        ModelLearner::<B, Mlp<SecondOrder<B>>>::new(model, MetaConfig::new(adapt.clone()))?
            .with_gradient_path(path);
    if let Some(sizes) = sizes {
        learner = learner.with_step_sizes(Mlp::from_weights(sizes, activation, device));
    }
    let batch = MetaBatch::<B>::from_tasks(tasks, weights.d_out(), adapt.loss, device);
    let gradient = learner.meta_gradient(&batch);
    let meta_grad = weights_from_grads::<MetaBackend<B>, B>(learner.model(), &gradient.grads);
    let inner_lr_grad = match (learner.step_sizes(), &gradient.step_size_grads) {
        (Some(sizes), Some(grads)) => Some(weights_from_grads::<MetaBackend<B>, B>(sizes, grads)),
        _ => None,
    };
    let fast = gradient
        .fast
        .as_ref()
        .expect("ModelLearner::meta_gradient keeps the fast weights");
    let fast_weights = match fast {
        Fast::Batched(fast) => (0..tasks.len()).map(|t| fast.to_weights(t)).collect(),
        Fast::PerTask(fast) => fast.iter().map(|m| m.to_weights(0)).collect(),
    };
    Ok(AnswerV2 {
        meta_loss: crate::model::to_f64(gradient.meta_loss)[0],
        meta_grad,
        inner_lr_grad,
        fast_weights,
    })
}

/// The meta-gradient of a version-2 problem by central finite differences of the
/// meta-loss, `(L(θ + εe_i) - L(θ - εe_i)) / 2ε` for every entry of the initial weights
/// (and of Meta-SGD's step sizes): an oracle independent of the meta-gradient code, for
/// f64 backends. Costs two meta-losses per entry.
pub fn finite_differences_v2<B: Backend>(
    problem: &ProblemV2,
    eps: f64,
    device: &B::Device,
) -> Result<(MlpWeights, Option<MlpWeights>)> {
    let loss_at = |p: &ProblemV2| -> Result<f64> {
        // The meta-loss does not depend on the order; first order is cheaper.
        let mut p = p.clone();
        p.order = Order::First;
        Ok(solve_v2::<B>(&p, device)?.meta_loss)
    };
    let central = |perturb: &dyn Fn(&mut ProblemV2, f64)| -> Result<f64> {
        let mut plus = problem.clone();
        perturb(&mut plus, eps);
        let mut minus = problem.clone();
        perturb(&mut minus, -eps);
        Ok((loss_at(&plus)? - loss_at(&minus)?) / (2.0 * eps))
    };
    let mut grad = problem.model.weights();
    for l in 0..grad.layers.len() {
        for o in 0..grad.layers[l].d_out() {
            for i in 0..grad.layers[l].d_in() {
                grad.layers[l].weight[o][i] = central(&|p, e| p.model.layers[l].weight[o][i] += e)?;
            }
            grad.layers[l].bias[o] = central(&|p, e| p.model.layers[l].bias[o] += e)?;
        }
    }
    let lr_grad = match &problem.inner_lr {
        InnerLr::Scalar(_) => None,
        InnerLr::PerParameter(sizes) => {
            let mut g = sizes.clone();
            let at = |p: &mut ProblemV2| match &mut p.inner_lr {
                InnerLr::PerParameter(s) => s.clone(),
                InnerLr::Scalar(_) => unreachable!("the problem has per-parameter sizes"),
            };
            for l in 0..g.layers.len() {
                for o in 0..g.layers[l].d_out() {
                    for i in 0..g.layers[l].d_in() {
                        g.layers[l].weight[o][i] = central(&|p, e| {
                            let mut s = at(p);
                            s.layers[l].weight[o][i] += e;
                            p.inner_lr = InnerLr::PerParameter(s);
                        })?;
                    }
                    g.layers[l].bias[o] = central(&|p, e| {
                        let mut s = at(p);
                        s.layers[l].bias[o] += e;
                        p.inner_lr = InnerLr::PerParameter(s);
                    })?;
                }
            }
            Some(g)
        }
    };
    Ok((grad, lr_grad))
}
