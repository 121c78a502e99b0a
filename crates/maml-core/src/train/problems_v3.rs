//! Problem files of version 3 (`docs/problem-schema.md`, "Version 3"): a layered model
//! (conv2d, batch norm, pooling, flatten or spatial mean, linear) on images
//! `x [n][C][H][W]` (or vectors `[n][F]`), a scalar or per-parameter `inner_lr`, any loss.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algo::learn::{Fast, ModelLearner};
use crate::config::{AdaptConfig, GradientPath, Loss, MetaConfig, Order};
use crate::data::batch::MetaBatch;
use crate::data::layers::{Array, LayeredSpec, LayeredWeights};
use crate::data::{SetData, TaskData};
use crate::error::{MamlError, Result};
use crate::model::check_device_precision;
use crate::model::layered::Layered;
use crate::model::{MetaBackend, SecondOrder};
use crate::train::problems::{SetV2, Targets, problem_adapt_config, set_from_v2};

/// A support or query set of a version-3 problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetV3 {
    /// Examples, `[n, C, H, W]` (or `[n, F]`), the model's input shape after `n`.
    pub x: Array,
    /// Class indices `[n]` (`cross_entropy`) or target rows `[n][out]`; absent: zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Targets>,
}

/// A task of a version-3 problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskV3 {
    /// The support set.
    pub support: SetV3,
    /// The query set.
    pub query: SetV3,
}

/// `inner_lr` of a version-3 problem: one step size, or one per parameter entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InnerLrV3 {
    /// The same step size for every parameter (MAML).
    Scalar(f64),
    /// One step size per entry, in the model's layout (Meta-SGD).
    PerParameter(LayeredWeights),
}

/// A version-3 problem file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemV3 {
    /// The model and its initial weights.
    pub model: LayeredSpec,
    /// The tasks.
    pub tasks: Vec<TaskV3>,
    /// Inner step size(s).
    pub inner_lr: InnerLrV3,
    /// Number of inner steps (0: no adaptation).
    pub inner_steps: usize,
    /// First or second order.
    pub order: Order,
    /// `sse`, `mse` or `cross_entropy`.
    pub loss: Loss,
}

/// The answer to a version-3 problem (`{}` for layers without parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerV3 {
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

impl AnswerV3 {
    /// Reads an answer file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        crate::data::read_json(path.as_ref())
    }
}

fn set_data(set: &SetV3, input: &[usize], loss: Loss, classes: usize, at: &str) -> Result<SetData> {
    let n = set.x.shape.first().copied().unwrap_or(0);
    if n == 0 {
        return Err(MamlError::Empty {
            location: format!("{at}.x"),
            detail: "a support or query set needs at least one example",
        });
    }
    let mut shape = vec![n];
    shape.extend_from_slice(input);
    set.x.check(&shape, &format!("{at}.x"))?;
    let d_in: usize = input.iter().product();
    let rows = set.x.values.chunks(d_in).map(<[f64]>::to_vec).collect();
    set_from_v2(
        &SetV2 {
            x: rows,
            y: set.y.clone(),
        },
        loss,
        classes,
        at,
    )
}

impl ProblemV3 {
    /// The inner-loop configuration (Meta-SGD's step sizes come from [`Self::inner_lr`]).
    pub fn adapt_config(&self) -> AdaptConfig {
        let scalar = match &self.inner_lr {
            InnerLrV3::Scalar(lr) => Some(*lr),
            InnerLrV3::PerParameter(_) => None,
        };
        problem_adapt_config(scalar, self.inner_steps, self.order, self.loss)
    }

    /// The tasks with examples flattened to rows of `C·H·W` and one-hot targets for
    /// `cross_entropy`, validated.
    pub fn task_data(&self) -> Result<Vec<TaskData>> {
        Ok(self.checked()?.0)
    }

    /// Checks shapes, finiteness and hyperparameters.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    /// Every check of [`Self::validate`], once: the tasks ([`Self::task_data`]) and the
    /// model's output width.
    fn checked(&self) -> Result<(Vec<TaskData>, usize)> {
        let d_out = self.model.validate()?;
        let d_in = self.model.d_in()?;
        match &self.inner_lr {
            InnerLrV3::Scalar(lr) => crate::config::check_lr("inner_lr", *lr)?,
            InnerLrV3::PerParameter(sizes) => {
                sizes.check_like(&self.model.weights(), "inner_lr")?
            }
        }
        let input = &self.model.input;
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("tasks[{i}]");
                Ok(TaskData {
                    support: set_data(
                        &t.support,
                        input,
                        self.loss,
                        d_out,
                        &format!("{at}.support"),
                    )?,
                    query: set_data(&t.query, input, self.loss, d_out, &format!("{at}.query"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        crate::data::validate_tasks(&tasks, d_in, d_out)?;
        Ok((tasks, d_out))
    }
}

/// Reads, in visit order, the gradient of every parameter of a module on `A` from
/// gradients on `G` (zeros for a parameter that did not feed the loss).
struct ReadGrads<'a, G: Backend> {
    grads: &'a GradientsParams,
    out: Vec<Array>,
    _backend: std::marker::PhantomData<G>,
}

impl<A: Backend, G: Backend> ModuleVisitor<A> for ReadGrads<'_, G> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let shape = param.val().dims().to_vec();
        let array = match self.grads.get::<G, D>(param.id) {
            Some(g) => Array::new(shape, g.into_data().iter::<f64>().collect()),
            None => Array::zeros(&shape),
        };
        self.out.push(array);
    }
}

fn grads_as_weights<A: Backend, G: Backend>(
    model: &Layered<A>,
    grads: &GradientsParams,
) -> LayeredWeights {
    let mut visitor = ReadGrads::<G> {
        grads,
        out: Vec::new(),
        _backend: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    let mut weights = model.to_weights();
    for (slot, grad) in weights.arrays_mut().zip(visitor.out) {
        *slot = grad;
    }
    weights
}

/// Solves a version-3 problem on backend `B` by nested autodiff.
pub fn solve_v3<B: Backend>(problem: &ProblemV3, device: &B::Device) -> Result<AnswerV3> {
    solve_v3_by::<B>(problem, GradientPath::Auto, device)
}

/// Solves a version-3 problem on backend `B`, taking the meta-gradient by `path` (the
/// layered model has no hand-derived road: both paths are nested autodiff).
pub fn solve_v3_by<B: Backend>(
    problem: &ProblemV3,
    path: GradientPath,
    device: &B::Device,
) -> Result<AnswerV3> {
    let (tasks, d_out) = problem.checked()?;
    check_device_precision::<B>(device)?;
    let model = Layered::<B>::from_spec(&problem.model, device)?;
    let mut learner = ModelLearner::<B, Layered<SecondOrder<B>>>::new(
        model,
        MetaConfig::new(problem.adapt_config()),
    )?
    .with_gradient_path(path);
    if let InnerLrV3::PerParameter(sizes) = &problem.inner_lr {
        let spec = problem.model.with_weights(sizes);
        learner = learner.with_step_sizes(Layered::from_spec(&spec, device)?);
    }
    let batch = MetaBatch::<B>::from_tasks(&tasks, d_out, problem.loss, device);
    let gradient = learner.meta_gradient(&batch);
    let meta_grad = grads_as_weights::<MetaBackend<B>, B>(learner.model(), &gradient.grads);
    let inner_lr_grad = match (learner.step_sizes(), &gradient.step_size_grads) {
        (Some(sizes), Some(grads)) => Some(grads_as_weights::<MetaBackend<B>, B>(sizes, grads)),
        _ => None,
    };
    let fast_weights = match gradient
        .fast
        .as_ref()
        .expect("ModelLearner::meta_gradient keeps the fast weights")
    {
        Fast::PerTask(fast) => fast.iter().map(Layered::to_weights).collect(),
        Fast::Batched(_) => unreachable!("the layered model runs task by task"),
    };
    Ok(AnswerV3 {
        meta_loss: crate::model::to_f64(gradient.meta_loss)[0],
        meta_grad,
        inner_lr_grad,
        fast_weights,
    })
}

/// The meta-gradient of a version-3 problem (and Meta-SGD's step-size gradient) by
/// central finite differences of the meta-loss, `(L(θ + εe_i) - L(θ - εe_i)) / 2ε` for
/// every entry: an oracle independent of the meta-gradient code, for f64 backends.
pub fn finite_differences_v3<B: Backend>(
    problem: &ProblemV3,
    eps: f64,
    device: &B::Device,
) -> Result<(LayeredWeights, Option<LayeredWeights>)> {
    let loss_at = |p: &ProblemV3| -> Result<f64> {
        let mut p = p.clone();
        // The meta-loss does not depend on the order; first order is cheaper.
        p.order = Order::First;
        Ok(solve_v3::<B>(&p, device)?.meta_loss)
    };
    // d L / d w for every entry of `at`, with `with(w)` the problem whose weights of that
    // layout are `w`.
    let central = |at: &LayeredWeights,
                   with: &dyn Fn(LayeredWeights) -> ProblemV3|
     -> Result<LayeredWeights> {
        let mut grad = at.clone();
        let lens: Vec<usize> = at.arrays().map(|a| a.values.len()).collect();
        for (a, &len) in lens.iter().enumerate() {
            for i in 0..len {
                let shifted = |e: f64| {
                    let mut w = at.clone();
                    w.arrays_mut().nth(a).expect("array index in range").values[i] += e;
                    with(w)
                };
                let d = (loss_at(&shifted(eps))? - loss_at(&shifted(-eps))?) / (2.0 * eps);
                grad.arrays_mut()
                    .nth(a)
                    .expect("array index in range")
                    .values[i] = d;
            }
        }
        Ok(grad)
    };
    let grad = central(&problem.model.weights(), &|w| ProblemV3 {
        model: problem.model.with_weights(&w),
        ..problem.clone()
    })?;
    let lr_grad = match &problem.inner_lr {
        InnerLrV3::Scalar(_) => None,
        InnerLrV3::PerParameter(sizes) => Some(central(sizes, &|s| ProblemV3 {
            inner_lr: InnerLrV3::PerParameter(s),
            ..problem.clone()
        })?),
    };
    Ok((grad, lr_grad))
}
