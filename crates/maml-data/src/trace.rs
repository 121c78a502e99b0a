//! A structured trace of one meta step holding everything the seed prints.

use burn::prelude::*;
use serde::Serialize;

use burn::module::{AutodiffModule, Module, Param};
use burn::optim::GradientsParams;

use crate::closed_form;
use crate::solve::weights_from_grads;
use maml_core::algo::learn::{Fast, adapt_observed};
use maml_core::algo::learner::ModelLearner;
use maml_core::config::{GradientPath, MetaConfig};
use maml_core::data::batch::MetaBatch;
use maml_core::data::{LinearWeights, TaskData, validate_tasks};
use maml_core::error::Result;
use maml_core::model::mlp::{Activation, Mlp, MlpWeights, TaskLinear};
use maml_core::model::{
    FreshLeaves, GradLevel, MetaBackend, MetaModel, SecondOrder, check_device_precision,
    is_tracked, to_f64,
};

/// One inner step of a traced meta step.
#[derive(Debug, Clone, Serialize)]
pub struct InnerStepTrace {
    /// Each task's support loss before the step.
    pub support_loss: Vec<f64>,
    /// Each task's support gradient.
    pub support_grad: Vec<LinearWeights>,
    /// Whether the support gradient is tracked by autodiff, read off the tensor
    /// (PyTorch: `requires_grad`; such a tensor is not a leaf).
    pub grad_requires_grad: bool,
}

/// Everything one meta step computes, automatic and closed form side by side.
#[derive(Debug, Clone, Serialize)]
pub struct MetaStepTrace {
    /// The configuration.
    pub config: MetaConfig,
    /// Initial weights before the step.
    pub initial: LinearWeights,
    /// Whether the initial weights are leaves that require gradients (PyTorch's
    /// `is_leaf` of a parameter).
    pub initial_is_leaf: bool,
    /// The inner steps.
    pub inner_steps: Vec<InnerStepTrace>,
    /// Whether the fast weights are tracked, i.e. computed from the initial weights and
    /// so not leaves.
    pub fast_tracked: bool,
    /// Each task's fast weights after the inner loop.
    pub fast_weights: Vec<LinearWeights>,
    /// Each task's query loss at its fast weights.
    pub query_loss: Vec<f64>,
    /// Mean query loss.
    pub meta_loss: f64,
    /// Meta-gradient by automatic differentiation.
    pub meta_grad: LinearWeights,
    /// Meta-gradient in closed form (f64, no autodiff).
    pub manual_meta_grad: LinearWeights,
    /// Weights after the meta-update with the automatic meta-gradient (the optimiser's).
    pub updated: LinearWeights,
    /// `initial - meta_lr * manual_meta_grad`, the seed's "Manual" update (SGD).
    pub manual_updated: LinearWeights,
}

/// Runs and records one meta step on `tasks` from `initial`, by nested autodiff (the
/// linear model as an [`Mlp`] of one layer).
pub fn trace_meta_step<B: Backend>(
    initial: &LinearWeights,
    tasks: &[TaskData],
    config: MetaConfig,
    device: &B::Device,
) -> Result<MetaStepTrace> {
    initial.validate("initial weights")?;
    validate_tasks(tasks, initial.d_in(), initial.d_out())?;
    config.validate()?;
    config.adapt.validate_linear()?;
    check_device_precision::<B>(device)?;
    let weights = MlpWeights {
        layers: vec![initial.clone()],
    };
    let batch =
        MetaBatch::<B>::from_tasks(tasks, initial.d_out(), device).with_loss(config.adapt.loss);
    let recording = record_inner_loop(&weights, &batch, &config, device);

    let model = Mlp::<B>::from_weights(&weights, Activation::Relu, device);
    let mut learner = ModelLearner::<B, Mlp<SecondOrder<B>>>::new(model, config.clone())?
        .with_gradient_path(GradientPath::Autodiff);
    let mut gradient = learner.meta_gradient(&batch);
    let meta_grad = weights_from_grads::<MetaBackend<B>, B>(learner.model(), &gradient.grads);
    let fast_weights = match gradient.fast.take() {
        Some(Fast::Batched(fast)) => (0..tasks.len()).map(|t| linear(&fast, t)).collect(),
        _ => unreachable!("the MLP is task-batched and meta_gradient keeps its fast weights"),
    };
    learner.apply(&mut gradient);
    let manual = closed_form::meta_gradient(initial, tasks, &config.adapt);
    let manual_updated = step_sgd(initial, &manual.meta_grad, config.meta_lr);
    Ok(MetaStepTrace {
        initial: initial.clone(),
        initial_is_leaf: recording.initial_is_leaf,
        inner_steps: recording.steps,
        fast_tracked: recording.fast_tracked,
        fast_weights,
        query_loss: to_f64(gradient.query_losses),
        meta_loss: to_f64(gradient.meta_loss)[0],
        meta_grad: meta_grad.layers[0].clone(),
        manual_meta_grad: manual.meta_grad,
        updated: linear(learner.model(), 0),
        manual_updated,
        config,
    })
}

/// Task `task`'s weights of a one-layer MLP.
fn linear<A: Backend>(model: &Mlp<A>, task: usize) -> LinearWeights {
    model.layers[0].to_weights(task)
}

/// What the inner loop tracks, read off its tensors.
struct Recording {
    initial_is_leaf: bool,
    steps: Vec<InnerStepTrace>,
    fast_tracked: bool,
}

/// Runs the inner loop as the meta-gradient does (from fresh leaves of the initial
/// weights) and records each step.
fn record_inner_loop<B: Backend>(
    weights: &MlpWeights,
    batch: &MetaBatch<B>,
    config: &MetaConfig,
    device: &B::Device,
) -> Recording {
    let initial = Mlp::<MetaBackend<B>>::from_weights(weights, Activation::Relu, device)
        .map(&mut FreshLeaves);
    let layer = &initial.layers[0];
    let initial_is_leaf =
        layer.weight.val().is_require_grad() && layer.bias.val().is_require_grad();
    let tasks = batch.tasks();
    let mut steps = Vec::new();
    let mut observe = |fast: &Mlp<MetaBackend<B>>, grads: &GradientsParams, level: GradLevel| {
        let pred = MetaModel::forward(&fast.valid(), batch.support.x.clone());
        let support_loss = to_f64(batch.support.task_losses(pred));
        let layer = &fast.layers[0];
        let (weight, bias, tracked) = match level {
            GradLevel::Meta => {
                let get = |id| grads.get::<MetaBackend<B>, 3>(id).expect(GRAD_EXISTS);
                let (w, b) = (get(layer.weight.id), get(layer.bias.id));
                let tracked = is_tracked(&w) && is_tracked(&b);
                (w.inner(), b.inner(), tracked)
            }
            GradLevel::Plain => {
                let get = |id| grads.get::<B, 3>(id).expect(GRAD_EXISTS);
                (get(layer.weight.id), get(layer.bias.id), false)
            }
        };
        let grad = TaskLinear {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        };
        steps.push(InnerStepTrace {
            support_loss,
            support_grad: (0..tasks).map(|t| grad.to_weights(t)).collect(),
            grad_requires_grad: tracked,
        });
    };
    let fast = adapt_observed::<B, Mlp<SecondOrder<B>>>(
        &initial,
        None,
        &batch.support,
        &config.adapt,
        &mut observe,
    );
    let fast_tracked = match &fast {
        Fast::Batched(fast) => is_tracked(&fast.layers[0].weight.val()),
        Fast::PerTask(_) => unreachable!("the MLP is task-batched"),
    };
    Recording {
        initial_is_leaf,
        steps,
        fast_tracked,
    }
}

const GRAD_EXISTS: &str = "the layer's weights feed the support loss, so it has a gradient";

fn step_sgd(w: &LinearWeights, g: &LinearWeights, lr: f64) -> LinearWeights {
    let weight: Vec<f64> = w
        .weight_flat()
        .iter()
        .zip(g.weight_flat())
        .map(|(w, g)| w - lr * g)
        .collect();
    let bias: Vec<f64> = w
        .bias
        .iter()
        .zip(&g.bias)
        .map(|(w, g)| w - lr * g)
        .collect();
    LinearWeights::from_flat(&weight, &bias, w.d_in())
}

/// `x` as Python's `repr(float)` writes it, as the seed's printout shows its numbers:
/// the shortest digits that read back as `x`, with a `.0` on whole numbers (`0.0`,
/// `-1.9347891807556152`), in scientific notation with a signed two-digit exponent
/// below 1e-4 and from 1e16 on (`1e-05`, `1e+16`), and `nan`, `inf`, `-inf`.
pub fn python_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes a decimal exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // Python's rule (`float_repr_style` 'short'): the decimal point after `exp + 1`
    // digits; scientific when that is below -3 or above 16.
    let point = exp + 1;
    let body = if x == 0.0 {
        "0.0".to_string()
    } else if !(-3..=16).contains(&point) {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{exp_sign}{:02}", exp.abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}
