//! MAML for any model: the inner loop ([`adapt_model`]) and the meta-gradient
//! ([`model_meta_gradient`], first or second order, MAML or Meta-SGD); the meta-learner
//! that updates the initial weights with it is [`crate::algo::learner::ModelLearner`].
//!
//! Burn has no `create_graph`: the gradient that an autodiff backend's backward pass
//! returns lives on its inner backend and is detached. Nesting the decorator gives exact
//! second order: the fast weights are lifted to [`SecondOrder<B>`](crate::model::SecondOrder) =
//! `Autodiff<Autodiff<B>>` as leaves, the support loss is differentiated there, and its
//! gradient comes back as a tensor of the meta backend `Autodiff<B>` that is itself
//! tracked, so the query loss of the fast weights can be differentiated back to the
//! initial weights through every inner step. This module is the only place that nests
//! the decorator.

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use super::adapt::batched;
pub use super::adapt::{
    adapt_model, adapt_observed, fast_query_losses, model_adaptation_curve, query_accuracies,
};
pub use super::gradient::{Fast, ModelMetaGradient};
pub use super::inner::{Observer, param_count};
pub use super::meta_loss::MetaLoss;
use super::meta_loss::add_size_grads;
pub use super::sizes::StepSizes;
use crate::config::{AdaptConfig, GradientPath};
use crate::data::batch::MetaBatch;
use crate::model::mlp::Mlp;
use crate::model::{Learnable, Load, MetaBackend, MetaModel};

/// The meta-gradient of the mean query loss over a meta-batch with respect to the
/// initial weights `model` (and Meta-SGD's `step_sizes`), first or second order as
/// `config` says, by [`GradientPath::Auto`].
pub fn model_meta_gradient<'a, B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M>
where
    M::Meta: 'a,
{
    model_meta_gradient_by::<B, M>(GradientPath::Auto, model, step_sizes, batch, config)
}

/// [`model_meta_gradient`] by the given path.
pub fn model_meta_gradient_by<'a, B: Backend, M: Learnable<B>>(
    path: GradientPath,
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M>
where
    M::Meta: 'a,
{
    meta_gradient_keeping::<B, M>(path, model, step_sizes.into(), batch, config, true)
}

/// How a meta-gradient is taken; [`GradientMethod::choose`] is the one place that picks
/// it. Every method gives the same numbers where more than one applies (tested), first or
/// second order as the configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientMethod {
    /// Reptile: `θ_0 − θ_K`, first order, no query gradient ([`crate::algo::reptile`]).
    Reptile,
    /// Implicit MAML: at the proximal inner optimum, by conjugate gradient
    /// ([`crate::algo::implicit`]).
    Implicit,
    /// The model's hand-derived road (the built-in MLP: [`crate::algo::analytic`]).
    HandDerived,
    /// The inner loop unrolled by nested autodiff, keeping the fast weights only at every
    /// `C`-th step ([`crate::algo::checkpointed`]).
    Checkpointed,
    /// The inner loop unrolled by nested autodiff, every step kept.
    Unrolled,
}

impl GradientMethod {
    /// The method for a model and configuration: Reptile or iMAML when configured; else
    /// the model's hand-derived road when `path` allows it, the model (and its step sizes)
    /// offers one and no part of the family beyond MAML and Meta-SGD is set; else
    /// unrolled, checkpointed when configured.
    pub fn choose<'a, B: Backend, M: Learnable<B>>(
        path: GradientPath,
        model: &M::Meta,
        step_sizes: impl Into<StepSizes<'a, B, M>>,
        config: &AdaptConfig,
    ) -> Self
    where
        M::Meta: 'a,
    {
        let hand_derived = path == GradientPath::Auto
            && !config.has_family_parts()
            && model.as_mlp().is_some()
            && match step_sizes.into() {
                StepSizes::Fixed => true,
                StepSizes::PerEntry(s) => s.as_mlp().is_some(),
                StepSizes::PerStep(_) => false,
            };
        if config.reptile {
            Self::Reptile
        } else if config.imaml.is_some() {
            Self::Implicit
        } else if hand_derived {
            Self::HandDerived
        } else if config.inner_checkpoint_every.is_some() {
            Self::Checkpointed
        } else {
            Self::Unrolled
        }
    }
}

/// [`model_meta_gradient_by`], with the fast weights only when `keep_fast`.
pub(crate) fn meta_gradient_keeping<B: Backend, M: Learnable<B>>(
    path: GradientPath,
    model: &M::Meta,
    step_sizes: StepSizes<'_, B, M>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    keep_fast: bool,
) -> ModelMetaGradient<B, M> {
    let batch = &batch.with_loss(config.loss);
    let mut gradient = match GradientMethod::choose::<B, M>(path, model, step_sizes, config) {
        GradientMethod::Reptile => {
            super::reptile::reptile_meta_gradient::<B, M>(model, batch, config)
        }
        GradientMethod::Implicit => {
            super::implicit::implicit_meta_gradient::<B, M>(model, batch, config)
        }
        GradientMethod::HandDerived => {
            mlp_meta_gradient::<B, M>(model, step_sizes.per_entry(), batch, config, keep_fast)
                .expect("GradientMethod::choose picks the hand-derived road for MLPs alone")
        }
        GradientMethod::Checkpointed => super::checkpointed::checkpointed_meta_gradient::<B, M>(
            model,
            step_sizes.per_entry(),
            batch,
            config,
        ),
        GradientMethod::Unrolled => {
            autodiff_meta_gradient::<B, M>(model, step_sizes, batch, config)
        }
    };
    if !keep_fast {
        gradient.fast = None;
    }
    gradient
}

/// The built-in MLP's meta-gradient by hand-derived back-propagation on `B`
/// ([`crate::algo::analytic`]); `None` when the model (or its step sizes) is not an MLP.
fn mlp_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    keep_fast: bool,
) -> Option<ModelMetaGradient<B, M>> {
    let mlp = model.as_mlp()?;
    let sizes = match step_sizes {
        Some(s) => Some(s.as_mlp()?),
        None => None,
    };
    let inner = |m: &Mlp<MetaBackend<B>>| -> Vec<crate::algo::analytic::Layer<B>> {
        m.layers
            .iter()
            .map(|l| (l.weight.val().inner(), l.bias.val().inner()))
            .collect()
    };
    let size_layers = sizes.map(inner);
    let out = crate::algo::analytic::meta_gradient(
        inner(mlp),
        mlp.activation,
        size_layers.as_deref(),
        batch,
        config,
        keep_fast,
    );
    let by_id = |m: &Mlp<MetaBackend<B>>, grads: Vec<crate::algo::analytic::Layer<B>>| {
        let mut params = GradientsParams::new();
        for (layer, (w, b)) in m.layers.iter().zip(grads) {
            params.register::<B, 3>(layer.weight.id, w);
            params.register::<B, 3>(layer.bias.id, b);
        }
        params
    };
    let grads = by_id(mlp, out.grads);
    // With no inner step the step sizes do not feed the loss: no gradients, as autodiff.
    let step_size_grads = sizes.map(|s| match out.step_size_grads {
        Some(g) => by_id(s, g),
        None => GradientsParams::new(),
    });
    let fast = out.fast.map(|fast| {
        let values: Vec<TensorPrimitive<B>> = fast
            .into_iter()
            .flat_map(|(w, b)| [w.into_primitive(), b.into_primitive()])
            .collect();
        Fast::Batched(model.valid().map(&mut Load(values.into_iter())))
    });
    let meta_loss = out.query_losses.clone().mean();
    Some(ModelMetaGradient {
        meta_loss,
        query_losses: out.query_losses,
        grads,
        step_size_grads,
        fast,
    })
}

/// The meta-gradient of any model by nested autodiff: the fast weights are lifted to
/// [`SecondOrder<B>`](crate::model::SecondOrder) for each second-order support gradient (see the module docs).
///
/// A task-batched model's meta-batch is one graph. Any other model runs task by task, and
/// each task gets a graph of its own, from fresh leaves of the initial weights, whose
/// backward pass gives that task's share of the meta-gradient; the shares are summed.
/// The numbers are those of one graph over the meta-batch (up to the order of the sums),
/// but a meta step holds one task's graph at a time, not all of them, and Burn 0.21's
/// autodiff, which merges the graphs that meet at shared leaves by moving every node of
/// one into the other, never merges a task into the growing graph of the tasks before it
/// (that bookkeeping was about a third of a second-order step of the Omniglot network).
pub fn autodiff_meta_gradient<'a, B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: impl Into<StepSizes<'a, B, M>>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M>
where
    M::Meta: 'a,
{
    let step_sizes = step_sizes.into();
    let batch = &batch.with_loss(config.loss);
    let tasks = batch.tasks();
    if batched::<B, M>() || tasks == 1 {
        return one_graph::<B, M>(model, step_sizes, batch, config, None);
    }
    let share = 1.0 / tasks as f64;
    let mut losses = Vec::with_capacity(tasks);
    let mut fast = Vec::with_capacity(tasks);
    let mut total: Option<(GradientsParams, Option<GradientsParams>)> = None;
    for t in 0..tasks {
        let task = one_graph::<B, M>(
            model,
            step_sizes,
            &batch.slice(t..t + 1),
            config,
            Some(share),
        );
        losses.push(task.query_losses);
        if let Some(Fast::PerTask(mut ms)) = task.fast {
            fast.append(&mut ms);
        }
        total = Some(match total {
            None => (task.grads, task.step_size_grads),
            Some((mut grads, mut size_grads)) => {
                super::meta_loss::add_grads::<B, M>(&mut grads, task.grads, model);
                if let (Some(acc), Some(more)) = (size_grads.as_mut(), task.step_size_grads) {
                    add_size_grads::<B, M>(acc, more, step_sizes);
                }
                (grads, size_grads)
            }
        });
    }
    let (grads, step_size_grads) = total.expect("a meta-batch has at least one task");
    let query_losses = Tensor::cat(losses, 0);
    ModelMetaGradient {
        meta_loss: query_losses.clone().mean(),
        query_losses,
        grads,
        step_size_grads,
        fast: Some(Fast::PerTask(fast)),
    }
}

/// The meta-gradient over `batch` as one graph: of the mean query loss, or with
/// `share = Some(s)` of `s` times the sum of the query losses (one task's share of a
/// larger meta-batch's mean).
fn one_graph<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: StepSizes<'_, B, M>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    share: Option<f64>,
) -> ModelMetaGradient<B, M> {
    let tracked = MetaLoss::<B, M>::track(model, step_sizes, batch, config);
    let tracked = match share {
        // `mul_scalar`, not `div_scalar`: Burn 0.21's `div_scalar` backward rounds
        // `1 / n` to f32.
        Some(s) => {
            let sum = tracked.query_losses().clone().sum();
            tracked.map(|_| sum.mul_scalar(s))
        }
        None => tracked,
    };
    tracked.backward_keeping(true)
}
