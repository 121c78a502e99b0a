//! The inner loop (`adapt`) and the meta-gradient (outer loop), first and second order.
//!
//! Burn has no `create_graph`: the gradient that an autodiff backend's backward pass
//! returns lives on its inner backend and is detached. Nesting the decorator gives exact
//! second order: on [`SecondOrder<B>`] = `Autodiff<Autodiff<B>>`, the support gradient
//! comes back as a tensor of `Autodiff<B>` that is itself tracked, so the query loss of
//! the fast weights can be differentiated back to the initial weights through every
//! inner step. This module is the only place that nests the decorator.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn_autodiff::Autodiff;

use crate::config::GradientPath;
use crate::config::{AdaptConfig, Order};
use crate::data::tasks::{SetBatch, TaskBatch};
use crate::data::{Answer, Problem};
use crate::error::Result;
use crate::model::linear::{LinearModel, check_device_precision, tensors_to_weights, to_f64};
use crate::model::{MetaBackend, SecondOrder};

const GRAD_EXISTS: &str = "the weights were marked require_grad and feed the loss, so \
                           backward yields their gradient";

/// Every task's fast weights, stored as `Θ^T = [W | b]^T`, `[tasks, in + 1, out]`.
#[derive(Debug, Clone)]
pub struct FastWeights<B: Backend> {
    /// `[tasks, in + 1, out]`: rows `0..in` are `W^T`, row `in` is `b`.
    pub theta_t: Tensor<B, 3>,
}

impl<B: Backend> FastWeights<B> {
    /// `W`, `[tasks, out, in]`.
    pub fn weight(&self) -> Tensor<B, 3> {
        let [tasks, rows, out] = self.theta_t.dims();
        self.theta_t
            .clone()
            .slice([0..tasks, 0..rows - 1, 0..out])
            .swap_dims(1, 2)
    }

    /// `b`, `[tasks, out]`.
    pub fn bias(&self) -> Tensor<B, 2> {
        let [tasks, rows, out] = self.theta_t.dims();
        self.theta_t
            .clone()
            .slice([0..tasks, rows - 1..rows, 0..out])
            .reshape([tasks, out])
    }
}

/// `Θ^T = [W | b]^T`, `[in + 1, out]`, from `weight [out, in]` and `bias [out]`.
pub fn theta_t<B: Backend>(weight: Tensor<B, 2>, bias: Tensor<B, 1>) -> Tensor<B, 2> {
    Tensor::cat(vec![weight.transpose(), bias.unsqueeze_dim(0)], 0)
}

/// `Θ^T` repeated for each of `tasks` tasks, `[tasks, in + 1, out]`.
fn per_task<B: Backend>(weight: Tensor<B, 2>, bias: Tensor<B, 1>, tasks: usize) -> Tensor<B, 3> {
    theta_t(weight, bias)
        .unsqueeze_dim::<3>(0)
        .repeat_dim(0, tasks)
}

/// Mean loss over the tasks of `set` of the same weights `weight [out, in]`,
/// `bias [out]` for every task (e.g. the query loss before adaptation), `[1]`.
pub fn mean_loss<B: Backend>(
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    set: &SetBatch<B>,
) -> Tensor<B, 1> {
    set.task_losses(per_task(weight, bias, set.tasks())).mean()
}

/// One inner step, as recorded for a trace.
#[derive(Debug, Clone)]
pub struct InnerStep<B: Backend> {
    /// Each task's support loss before the step, `[tasks]`.
    pub support_loss: Tensor<B, 1>,
    /// Each task's support gradient, in the layout of [`FastWeights`].
    pub grad: FastWeights<B>,
    /// Whether the support gradient is itself tracked by autodiff (PyTorch's
    /// `requires_grad`): true in second order, false in first order.
    pub grad_tracked: bool,
}

/// Whether autodiff records operations on `tensor`, PyTorch's `requires_grad`: true for a
/// leaf marked with `require_grad` and for anything computed from one. (Burn's
/// `Tensor::is_require_grad` is true for such leaves alone.)
pub fn is_tracked<B: Backend, const D: usize>(tensor: &Tensor<Autodiff<B>, D>) -> bool {
    tensor.clone().into_primitive().tensor().is_tracked()
}

/// What a traced meta step records besides the numbers.
#[derive(Debug, Clone, Default)]
pub struct Recording<B: Backend> {
    /// The inner steps.
    pub steps: Vec<InnerStep<B>>,
    /// Whether the initial weights are leaves that require gradients.
    pub initial_is_leaf: bool,
    /// Whether the fast weights are tracked (computed from the initial weights).
    pub fast_tracked: bool,
}

/// First order: the support gradient of `theta_t [tasks, in + 1, out]` taken on a
/// detached copy, so it is a constant of the meta backend.
fn support_grad_first_order<B: Backend>(
    theta_t: &Tensor<MetaBackend<B>, 3>,
    support: &SetBatch<MetaBackend<B>>,
) -> Tensor<MetaBackend<B>, 3> {
    let leaf = theta_t.clone().detach().require_grad();
    let grads = support.total_loss(leaf.clone()).backward();
    Tensor::from_inner(leaf.grad(&grads).expect(GRAD_EXISTS))
}

/// Second order: the fast weights are lifted to [`SecondOrder<B>`] as a leaf; the
/// gradient that its backward pass returns is a tracked tensor of the meta backend.
fn support_grad_second_order<B: Backend>(
    theta_t: &Tensor<MetaBackend<B>, 3>,
    support: &SetBatch<SecondOrder<B>>,
) -> Tensor<MetaBackend<B>, 3> {
    let leaf = Tensor::<SecondOrder<B>, 3>::from_inner(theta_t.clone()).require_grad();
    let grads = support.total_loss(leaf.clone()).backward();
    leaf.grad(&grads).expect(GRAD_EXISTS)
}

/// The inner loop: `inner_steps` gradient steps of size `inner_lr` on each task's support
/// set, from the initial weights `weight [out, in]`, `bias [out]` (tracked on the meta
/// backend). Returns every task's fast weights, tracked as functions of the initial
/// weights: fully in second order, through the identity alone in first order.
pub fn adapt<B: Backend>(
    weight: Tensor<MetaBackend<B>, 2>,
    bias: Tensor<MetaBackend<B>, 1>,
    support: &SetBatch<B>,
    config: &AdaptConfig,
) -> FastWeights<MetaBackend<B>> {
    adapt_recorded(weight, bias, support, config, None)
}

fn adapt_recorded<B: Backend>(
    weight: Tensor<MetaBackend<B>, 2>,
    bias: Tensor<MetaBackend<B>, 1>,
    support: &SetBatch<B>,
    config: &AdaptConfig,
    mut record: Option<&mut Recording<B>>,
) -> FastWeights<MetaBackend<B>> {
    if let Some(record) = record.as_deref_mut() {
        record.initial_is_leaf = weight.is_require_grad() && bias.is_require_grad();
    }
    let mut theta = per_task(weight, bias, support.tasks());
    let support1 = support.lift::<MetaBackend<B>>();
    let support2 = match config.order {
        Order::Second if config.inner_steps > 0 => Some(support1.lift::<SecondOrder<B>>()),
        _ => None,
    };
    for _ in 0..config.inner_steps {
        let grad = match &support2 {
            None => support_grad_first_order(&theta, &support1),
            Some(support2) => support_grad_second_order(&theta, support2),
        };
        if let Some(record) = record.as_deref_mut() {
            record.steps.push(InnerStep {
                support_loss: support.task_losses(theta.clone().inner()),
                grad_tracked: is_tracked(&grad),
                grad: FastWeights {
                    theta_t: grad.clone().inner(),
                },
            });
        }
        theta = theta - grad.mul_scalar(config.inner_lr);
    }
    if let Some(record) = record {
        record.fast_tracked = is_tracked(&theta);
    }
    FastWeights { theta_t: theta }
}

/// A meta-gradient and what it was computed from. All tensors are lazy: reading one
/// synchronises with the device.
#[derive(Debug, Clone)]
pub struct MetaGradient<B: Backend> {
    /// Mean query loss over the tasks, `[1]`.
    pub meta_loss: Tensor<B, 1>,
    /// Each task's query loss, `[tasks]`.
    pub query_losses: Tensor<B, 1>,
    /// d meta-loss / d weight, `[out, in]`.
    pub weight: Tensor<B, 2>,
    /// d meta-loss / d bias, `[out]`.
    pub bias: Tensor<B, 1>,
    /// Every task's fast weights.
    pub fast: FastWeights<B>,
}

/// The meta-gradient of the mean query loss over a meta-batch with respect to the
/// model's (initial) weights, first or second order as `config` says.
pub fn meta_gradient<B: Backend>(
    model: &LinearModel<MetaBackend<B>>,
    batch: &TaskBatch<B>,
    config: &AdaptConfig,
) -> MetaGradient<B> {
    meta_gradient_by(GradientPath::Auto, model, batch, config)
}

/// [`meta_gradient`] by the given path: [`GradientPath::Auto`] derives it by hand (the
/// inner step of a linear model with a squared loss is affine,
/// [`crate::algo::analytic`]), [`GradientPath::Autodiff`] takes nested autodiff.
pub fn meta_gradient_by<B: Backend>(
    path: GradientPath,
    model: &LinearModel<MetaBackend<B>>,
    batch: &TaskBatch<B>,
    config: &AdaptConfig,
) -> MetaGradient<B> {
    match path {
        GradientPath::Auto => analytic_meta_gradient(model, batch, config).0,
        GradientPath::Autodiff => meta_gradient_recorded(model, batch, config, None).0,
    }
}

/// The hand-derived meta-gradient, with the gradients by parameter id for the optimiser.
pub(crate) fn analytic_meta_gradient<B: Backend>(
    model: &LinearModel<MetaBackend<B>>,
    batch: &TaskBatch<B>,
    config: &AdaptConfig,
) -> (MetaGradient<B>, GradientsParams) {
    let weight = model.weight.val().inner();
    let [out, d_in] = weight.dims();
    let answer = crate::algo::analytic::linear_meta_gradient(
        theta_t(weight, model.bias.val().inner()),
        batch,
        config,
    );
    // The gradient has the layout of one task's `Θ^T`: read it as such.
    let grad = FastWeights {
        theta_t: answer.grad.unsqueeze_dim(0),
    };
    let grad_weight = grad.weight().reshape([out, d_in]);
    let grad_bias = grad.bias().reshape([out]);
    let mut params = GradientsParams::new();
    params.register(model.weight.id, grad_weight.clone());
    params.register(model.bias.id, grad_bias.clone());
    let gradient = MetaGradient {
        meta_loss: answer.query_losses.clone().mean(),
        query_losses: answer.query_losses,
        weight: grad_weight,
        bias: grad_bias,
        fast: FastWeights {
            theta_t: answer.fast,
        },
    };
    (gradient, params)
}

pub(crate) fn meta_gradient_recorded<B: Backend>(
    model: &LinearModel<MetaBackend<B>>,
    batch: &TaskBatch<B>,
    config: &AdaptConfig,
    record: Option<&mut Recording<B>>,
) -> (MetaGradient<B>, GradientsParams) {
    // Fresh leaves for every meta-gradient: the model's parameter tensors may already
    // have served earlier backward passes, whose graph clean-up can release a reused
    // leaf (seen on wgpu: a missing bias gradient). The gradients are registered under
    // the parameters' ids for the optimiser.
    let weight = model.weight.val().detach().require_grad();
    let bias = model.bias.val().detach().require_grad();
    let fast = adapt_recorded(weight.clone(), bias.clone(), &batch.support, config, record);
    let query = batch.query.lift::<MetaBackend<B>>();
    let query_losses = query.task_losses(fast.theta_t.clone());
    let meta_loss = query_losses.clone().mean();
    let grads = meta_loss.backward();
    let grad_weight = weight.grad(&grads).expect(GRAD_EXISTS);
    let grad_bias = bias.grad(&grads).expect(GRAD_EXISTS);
    let mut params = GradientsParams::new();
    params.register(model.weight.id, grad_weight.clone());
    params.register(model.bias.id, grad_bias.clone());
    let gradient = MetaGradient {
        meta_loss: meta_loss.inner(),
        query_losses: query_losses.inner(),
        weight: grad_weight,
        bias: grad_bias,
        fast: FastWeights {
            theta_t: fast.theta_t.inner(),
        },
    };
    (gradient, params)
}

/// Solves a problem file on backend `B`: meta-loss, meta-gradient and fast weights, by
/// [`GradientPath::Auto`].
pub fn solve<B: Backend>(problem: &Problem, device: &B::Device) -> Result<Answer> {
    solve_by::<B>(problem, GradientPath::Auto, device)
}

/// [`solve`] by the given gradient path.
pub fn solve_by<B: Backend>(
    problem: &Problem,
    path: GradientPath,
    device: &B::Device,
) -> Result<Answer> {
    problem.validate()?;
    check_device_precision::<B>(device)?;
    let init = problem.initial_weights();
    let model = LinearModel::<MetaBackend<B>>::from_weights(&init, device);
    let batch = TaskBatch::from_tasks(&problem.tasks, init.d_out(), problem.loss, device);
    let gradient = meta_gradient_by(path, &model, &batch, &problem.adapt_config());
    Ok(answer_from(gradient))
}

/// Reads a meta-gradient back to the host in the answer layout.
pub fn answer_from<B: Backend>(gradient: MetaGradient<B>) -> Answer {
    Answer {
        meta_loss: to_f64(gradient.meta_loss)[0],
        meta_grad: tensors_to_weights(gradient.weight, gradient.bias),
        fast_weights: fast_to_weights(gradient.fast),
    }
}

/// Splits batched fast weights into one host copy per task.
pub fn fast_to_weights<B: Backend>(fast: FastWeights<B>) -> Vec<crate::data::LinearWeights> {
    let [tasks, rows, out] = fast.theta_t.dims();
    let d_in = rows - 1;
    let values = to_f64(fast.theta_t);
    (0..tasks)
        .map(|t| {
            let at = |r: usize, o: usize| values[(t * rows + r) * out + o];
            crate::data::LinearWeights {
                weight: (0..out)
                    .map(|o| (0..d_in).map(|r| at(r, o)).collect())
                    .collect(),
                bias: (0..out).map(|o| at(d_in, o)).collect(),
            }
        })
        .collect()
}

/// Mean query loss after `k` inner steps, for `k = 0..=config.inner_steps`, starting
/// from the initial weights `weight [out, in]`, `bias [out]` (an adaptation curve).
pub fn adaptation_curve<B: Backend>(
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    batch: &TaskBatch<B>,
    config: &AdaptConfig,
) -> Vec<f64> {
    let support = batch.support.lift::<MetaBackend<B>>();
    let mut theta = Tensor::<MetaBackend<B>, 3>::from_inner(per_task(weight, bias, batch.tasks()));
    let mut curve = Vec::with_capacity(config.inner_steps + 1);
    for k in 0..=config.inner_steps {
        let loss = batch.query.task_losses(theta.clone().inner()).mean();
        curve.push(to_f64(loss)[0]);
        if k < config.inner_steps {
            let grad = support_grad_first_order(&theta, &support);
            theta = theta - grad.mul_scalar(config.inner_lr);
        }
    }
    curve
}
