//! MAML for any model: the inner loop ([`adapt_model`]) and the meta-gradient
//! ([`model_meta_gradient`], first or second order, MAML or Meta-SGD); the meta-learner
//! that updates the initial weights with it is [`crate::algo::learner::ModelLearner`].
//!
//! Burn has no `create_graph`: the gradient that an autodiff backend's backward pass
//! returns lives on its inner backend and is detached. Nesting the decorator gives exact
//! second order: the fast weights are lifted to [`SecondOrder<B>`] =
//! `Autodiff<Autodiff<B>>` as leaves, the support loss is differentiated there, and its
//! gradient comes back as a tensor of the meta backend `Autodiff<B>` that is itself
//! tracked, so the query loss of the fast weights can be differentiated back to the
//! initial weights through every inner step. This module is the only place that nests
//! the decorator.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

pub use super::gradient::{Fast, ModelMetaGradient};
pub use super::inner::Observer;
use super::inner::{adapt_steps, collect};
use crate::config::{AdaptConfig, GradientPath, Order};
use crate::data::batch::{MetaBatch, Sets};
use crate::model::mlp::Mlp;
use crate::model::{
    FreshLeaves, Learnable, Load, MetaBackend, MetaModel, RepeatTasks, SecondOrder,
};

fn forward_meta<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    x: Tensor<MetaBackend<B>, 3>,
) -> Tensor<MetaBackend<B>, 3> {
    <M::Meta as MetaModel<MetaBackend<B>>>::forward(model, x)
}

fn batched<B: Backend, M: Learnable<B>>() -> bool {
    <M::Meta as MetaModel<MetaBackend<B>>>::TASK_BATCHED
}

/// The inner loop for any model, on the meta backend: `config.inner_steps` steps on each
/// task's support set from the initial weights `model` (Meta-SGD: per-parameter step
/// sizes `step_sizes`, a module of the model's structure). The fast weights are tracked
/// as functions of `model` (and of `step_sizes`).
pub fn adapt_model<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    support: &Sets<B>,
    config: &AdaptConfig,
) -> Fast<M::Meta> {
    adapt_observed::<B, M>(model, step_sizes, support, config, &mut |_, _, _| {})
}

/// [`adapt_model`], showing every inner step to `observe`: the fast weights the step
/// started from, the support gradients by parameter id, and where they live (the inner
/// loop's trace and figures read it).
pub fn adapt_observed<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    support: &Sets<B>,
    config: &AdaptConfig,
    observe: &mut Observer<'_, B, M>,
) -> Fast<M::Meta> {
    let sizes = step_sizes.map(collect::<B, M>).unwrap_or_default();
    let support1 = support.with_loss(config.loss).lift::<MetaBackend<B>>();
    let support2 = (config.order == Order::Second && config.inner_steps > 0)
        .then(|| support1.lift::<SecondOrder<B>>());
    let tasks = support.tasks();
    let mut run = |start: M::Meta, s1: &Sets<MetaBackend<B>>, s2: Option<&Sets<SecondOrder<B>>>| {
        let (steps, lr) = (config.inner_steps, config.inner_lr);
        adapt_steps::<B, M>(start, s1, s2, steps, &sizes, lr, observe)
    };
    if batched::<B, M>() {
        let start = model.clone().map(&mut RepeatTasks(tasks));
        Fast::Batched(run(start, &support1, support2.as_ref()))
    } else {
        Fast::PerTask(
            (0..tasks)
                .map(|t| {
                    let s1 = support1.task(t);
                    let s2 = support2.as_ref().map(|s| s.task(t));
                    run(model.clone(), &s1, s2.as_ref())
                })
                .collect(),
        )
    }
}

/// Each task's query loss of fast weights, `[tasks]`.
pub fn fast_query_losses<B: Backend, M: Learnable<B>>(
    fast: &Fast<M::Meta>,
    query: &Sets<MetaBackend<B>>,
) -> Tensor<MetaBackend<B>, 1> {
    match fast {
        Fast::Batched(model) => query.task_losses(forward_meta::<B, M>(model, query.x.clone())),
        Fast::PerTask(models) => Tensor::cat(
            models
                .iter()
                .enumerate()
                .map(|(t, model)| {
                    let q = query.task(t);
                    q.task_losses(forward_meta::<B, M>(model, q.x.clone()))
                })
                .collect(),
            0,
        ),
    }
}

/// Each task's query accuracy ([`Sets::task_accuracies`]) of fast weights on `B`,
/// `[tasks]`.
pub fn query_accuracies<B: Backend, P: MetaModel<B>>(
    fast: &Fast<P>,
    query: &Sets<B>,
) -> Tensor<B, 1> {
    match fast {
        Fast::Batched(model) => query.task_accuracies(model.forward(query.x.clone())),
        Fast::PerTask(models) => Tensor::cat(
            models
                .iter()
                .enumerate()
                .map(|(t, model)| {
                    let q = query.task(t);
                    q.task_accuracies(model.forward(q.x.clone()))
                })
                .collect(),
            0,
        ),
    }
}

/// The meta-gradient of the mean query loss over a meta-batch with respect to the
/// initial weights `model` (and Meta-SGD's `step_sizes`), first or second order as
/// `config` says, by [`GradientPath::Auto`].
pub fn model_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
    model_meta_gradient_by::<B, M>(GradientPath::Auto, model, step_sizes, batch, config)
}

/// [`model_meta_gradient`] by the given path.
pub fn model_meta_gradient_by<B: Backend, M: Learnable<B>>(
    path: GradientPath,
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
    meta_gradient_keeping::<B, M>(path, model, step_sizes, batch, config, true)
}

/// How a meta-gradient is taken; [`GradientMethod::choose`] is the one place that picks
/// it. Every method gives the same numbers where more than one applies (tested), first or
/// second order as the configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientMethod {
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
    /// The method for a model and configuration: iMAML when configured; else the model's
    /// hand-derived road when `path` allows it and the model (and its step sizes) offers
    /// one; else unrolled, checkpointed when configured.
    pub fn choose<B: Backend, M: Learnable<B>>(
        path: GradientPath,
        model: &M::Meta,
        step_sizes: Option<&M::Meta>,
        config: &AdaptConfig,
    ) -> Self {
        let hand_derived = path == GradientPath::Auto
            && model.as_mlp().is_some()
            && step_sizes.is_none_or(|s| s.as_mlp().is_some());
        if config.imaml.is_some() {
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
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    keep_fast: bool,
) -> ModelMetaGradient<B, M> {
    let batch = &batch.with_loss(config.loss);
    let mut gradient = match GradientMethod::choose::<B, M>(path, model, step_sizes, config) {
        GradientMethod::Implicit => {
            super::implicit::implicit_meta_gradient::<B, M>(model, batch, config)
        }
        GradientMethod::HandDerived => {
            mlp_meta_gradient::<B, M>(model, step_sizes, batch, config, keep_fast)
                .expect("GradientMethod::choose picks the hand-derived road for MLPs alone")
        }
        GradientMethod::Checkpointed => super::checkpointed::checkpointed_meta_gradient::<B, M>(
            model, step_sizes, batch, config,
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
/// [`SecondOrder<B>`] for each second-order support gradient (see the module docs).
///
/// A task-batched model's meta-batch is one graph. Any other model runs task by task, and
/// each task gets a graph of its own, from fresh leaves of the initial weights, whose
/// backward pass gives that task's share of the meta-gradient; the shares are summed.
/// The numbers are those of one graph over the meta-batch (up to the order of the sums),
/// but a meta step holds one task's graph at a time, not all of them, and Burn 0.21's
/// autodiff, which merges the graphs that meet at shared leaves by moving every node of
/// one into the other, never merges a task into the growing graph of the tasks before it
/// (that bookkeeping was about a third of a second-order step of the Omniglot network).
pub fn autodiff_meta_gradient<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> ModelMetaGradient<B, M> {
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
                add_grads::<B, M>(&mut grads, task.grads, model);
                if let (Some(acc), Some(more), Some(sizes)) =
                    (size_grads.as_mut(), task.step_size_grads, step_sizes)
                {
                    add_grads::<B, M>(acc, more, sizes);
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
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    share: Option<f64>,
) -> ModelMetaGradient<B, M> {
    let tracked = MetaLoss::<B, M>::track(model, step_sizes, batch, config);
    let tracked = match share {
        // `mul_scalar`, not `div_scalar`: Burn 0.21's `div_scalar` backward rounds
        // `1 / n` to f32.
        Some(s) => {
            let sum = tracked.query_losses.clone().sum();
            tracked.map(|_| sum.mul_scalar(s))
        }
        None => tracked,
    };
    tracked.backward_keeping(true)
}

/// The meta-loss of a meta-batch ([`crate::ModelLearner::meta_loss`]), tracked back to
/// the initial weights (and Meta-SGD's step sizes) through the inner loop.
pub struct MetaLoss<B: Backend, M: Learnable<B>> {
    /// The objective, `[1]`, on the meta backend: the mean query loss of the fast
    /// weights over the tasks, or any objective built from it ([`Self::map`]).
    pub loss: Tensor<MetaBackend<B>, 1>,
    query_losses: Tensor<MetaBackend<B>, 1>,
    leaves: M::Meta,
    size_leaves: Option<M::Meta>,
    fast: Fast<M::Meta>,
}

impl<B: Backend, M: Learnable<B>> MetaLoss<B, M> {
    /// Adapts fresh leaves of `model` (and `step_sizes`) on the support sets and scores
    /// the fast weights on the query sets (`batch` scored with `config.loss`).
    pub(crate) fn track(
        model: &M::Meta,
        step_sizes: Option<&M::Meta>,
        batch: &MetaBatch<B>,
        config: &AdaptConfig,
    ) -> Self {
        // Fresh leaves for every meta-gradient (a reused leaf may have been released by
        // an earlier backward pass's graph clean-up); they keep the parameters' ids.
        let leaves = model.clone().map(&mut FreshLeaves);
        let size_leaves = step_sizes.map(|s| s.clone().map(&mut FreshLeaves));
        let fast = adapt_model::<B, M>(&leaves, size_leaves.as_ref(), &batch.support, config);
        let query = batch.query.lift::<MetaBackend<B>>();
        let query_losses = fast_query_losses::<B, M>(&fast, &query);
        Self {
            loss: query_losses.clone().mean(),
            query_losses,
            leaves,
            size_leaves,
            fast,
        }
    }

    /// The objective replaced by `f(loss)`, for example the meta-loss plus a penalty.
    pub fn map(
        self,
        f: impl FnOnce(Tensor<MetaBackend<B>, 1>) -> Tensor<MetaBackend<B>, 1>,
    ) -> Self {
        Self {
            loss: f(self.loss),
            ..self
        }
    }

    /// The objective's gradient with respect to the initial weights (and step sizes),
    /// for [`crate::ModelLearner::apply`]; its `meta_loss` is the mean query loss.
    pub fn backward(self) -> ModelMetaGradient<B, M> {
        self.backward_keeping(false)
    }

    /// [`Self::backward`], with the fast weights if `keep_fast`.
    fn backward_keeping(self, keep_fast: bool) -> ModelMetaGradient<B, M> {
        let mut grads = self.loss.backward();
        let model_grads = GradientsParams::from_module(&mut grads, &self.leaves);
        let step_size_grads = self
            .size_leaves
            .as_ref()
            .map(|s| GradientsParams::from_module(&mut grads, s));
        ModelMetaGradient {
            meta_loss: self.query_losses.clone().mean().inner(),
            query_losses: self.query_losses.inner(),
            grads: model_grads,
            step_size_grads,
            fast: keep_fast.then(|| self.fast.valid()),
        }
    }
}

/// Adds `more` into `acc`, parameter by parameter (`module`'s ids); a parameter that
/// neither has a gradient for stays without one.
fn add_grads<B: Backend, M: Learnable<B>>(
    acc: &mut GradientsParams,
    more: GradientsParams,
    module: &M::Meta,
) {
    struct Add<'a, B> {
        acc: &'a mut GradientsParams,
        more: GradientsParams,
        _backend: std::marker::PhantomData<B>,
    }
    impl<B: Backend> ModuleVisitor<MetaBackend<B>> for Add<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<MetaBackend<B>, D>>) {
            let sum = match (
                self.acc.remove::<B, D>(param.id),
                self.more.remove::<B, D>(param.id),
            ) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            if let Some(g) = sum {
                self.acc.register::<B, D>(param.id, g);
            }
        }
    }
    module.visit(&mut Add::<B> {
        acc,
        more,
        _backend: std::marker::PhantomData,
    });
}

/// The mean query loss after `k` first-order inner steps from `model` (with Meta-SGD's
/// `step_sizes`), for `k = 0..=config.inner_steps`: the adaptation curve.
pub fn model_adaptation_curve<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    step_sizes: Option<&M::Meta>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
) -> Vec<f64> {
    let detach = |m: &M::Meta| <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(m.valid());
    let batch = batch.with_loss(config.loss);
    let query = batch.query.lift::<MetaBackend<B>>();
    let support = batch.support.lift::<MetaBackend<B>>();
    let sizes = step_sizes
        .map(|s| collect::<B, M>(&detach(s)))
        .unwrap_or_default();
    let start = detach(model);
    let tasks = batch.tasks();
    let mut fast = if batched::<B, M>() {
        Fast::Batched(start.map(&mut RepeatTasks(tasks)))
    } else {
        Fast::PerTask(vec![start; tasks])
    };
    let step = |m: M::Meta, s: &Sets<MetaBackend<B>>| {
        detach(&adapt_steps::<B, M>(
            m,
            s,
            None,
            1,
            &sizes,
            config.inner_lr,
            &mut |_, _, _| {},
        ))
    };
    let mut curve = Vec::with_capacity(config.inner_steps + 1);
    for k in 0..=config.inner_steps {
        let losses = fast_query_losses::<B, M>(&fast, &query).inner();
        curve.push(crate::model::to_f64(losses.mean())[0]);
        if k < config.inner_steps {
            fast = match fast {
                Fast::Batched(m) => Fast::Batched(step(m, &support)),
                Fast::PerTask(ms) => Fast::PerTask(
                    ms.into_iter()
                        .enumerate()
                        .map(|(t, m)| step(m, &support.task(t)))
                        .collect(),
                ),
            };
        }
    }
    curve
}
