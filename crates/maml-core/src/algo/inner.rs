//! The steps of the inner loop for any model, on the meta backend: what MAML's
//! meta-gradient ([`crate::algo::learn`]) runs once and the checkpointed one
//! ([`crate::algo::checkpointed`]) runs again segment by segment.
//!
//! A step is the inner update rule ([`Rule`]: a step size, Meta-SGD's per-entry or
//! MAML++'s per-step sizes, and a direction from [`InnerOptimizer`]) applied to the
//! adapted parameters alone (ANIL, BOIL; never a model's fixed per-step sets).

use std::ops::Range;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::config::{AdaptConfig, InnerOptimizer};
use crate::data::batch::Sets;
use crate::model::{
    Collect, GradLevel, Learnable, MetaBackend, MetaModel, SecondOrder, detached_leaves,
    lift_second,
};

/// What an inner loop shows each step, before it moves: the fast weights and their
/// support gradient, by parameter id, on the meta backend (tracked, second order) or on
/// `B` (first order). A trace of the inner loop records it (`maml trace`).
pub type Observer<'a, B, M> =
    dyn FnMut(&<M as Learnable<B>>::Meta, &GradientsParams, GradLevel) + 'a;

/// How big each inner step is.
pub(crate) enum Sizes<'a, B: Backend> {
    /// `inner_lr` for every parameter (MAML).
    Scalar,
    /// One per parameter entry, in visit order (Meta-SGD), tracked on the meta backend.
    PerParameter(&'a [TensorPrimitive<MetaBackend<B>>]),
    /// One per inner step and parameter tensor, `[K, P]` (MAML++'s LSLR), tracked.
    PerStep(&'a Tensor<MetaBackend<B>, 2>),
}

/// The inner update rule: `θ_{k+1} = θ_k − α_k ⊙ d_k` for the adapted parameters.
pub(crate) struct Rule<'a, B: Backend> {
    /// The step size of [`Sizes::Scalar`].
    pub inner_lr: f64,
    /// The step sizes.
    pub sizes: Sizes<'a, B>,
    /// The direction `d_k`.
    pub optimizer: InnerOptimizer,
    /// For each parameter in visit order, whether the inner loop moves it.
    pub adapted: Vec<bool>,
}

impl<'a, B: Backend> Rule<'a, B> {
    /// The rule of `config` for `model`, with the given step sizes.
    pub fn new<M: Learnable<B>>(
        model: &M::Meta,
        sizes: Sizes<'a, B>,
        config: &AdaptConfig,
    ) -> Self {
        Self {
            inner_lr: config.inner_lr,
            sizes,
            optimizer: config.inner_optimizer,
            adapted: adapted_mask::<B, M>(model, config),
        }
    }
}

/// For each parameter of `model` in visit order, whether the inner loop of `config`
/// adapts it: listed in `inner_params` (all when `None`) and not one of the model's
/// [`MetaModel::fixed_params`].
pub(crate) fn adapted_mask<B: Backend, M: Learnable<B>>(
    model: &M::Meta,
    config: &AdaptConfig,
) -> Vec<bool> {
    let count = param_count::<MetaBackend<B>, M::Meta>(model);
    let fixed = <M::Meta as MetaModel<MetaBackend<B>>>::fixed_params(model);
    (0..count)
        .map(|i| {
            !fixed.contains(&i)
                && config
                    .inner_params
                    .as_ref()
                    .is_none_or(|inner| inner.contains(&i))
        })
        .collect()
}

/// The number of parameter tensors of a module.
pub fn param_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<B, D>>) {
            self.0 += 1;
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// The state of a stateful inner optimizer, per parameter in visit order (momentum's
/// velocity; Adam's two moments), on the meta backend.
type OptimizerState<B> = Vec<Vec<TensorPrimitive<MetaBackend<B>>>>;

/// One inner step of fast weights on the meta backend, with `g` looked up by id.
struct InnerUpdate<'a, B: Backend> {
    grads: &'a GradientsParams,
    level: GradLevel,
    rule: &'a Rule<'a, B>,
    step: usize,
    state: &'a mut OptimizerState<B>,
    index: usize,
}

impl<B: Backend> InnerUpdate<'_, B> {
    /// The direction `d_k` from the gradient `g_k`, updating the optimizer's state.
    fn direction<const D: usize>(
        &mut self,
        index: usize,
        g: Tensor<MetaBackend<B>, D>,
    ) -> Tensor<MetaBackend<B>, D> {
        let slot = &mut self.state[index];
        let previous = |i: usize| slot.get(i).cloned().map(Tensor::<_, D>::from_primitive);
        match self.rule.optimizer {
            InnerOptimizer::Sgd => g,
            InnerOptimizer::Momentum { momentum } => {
                let v = match previous(0) {
                    Some(v) => v.mul_scalar(momentum) + g,
                    None => g,
                };
                *slot = vec![v.clone().into_primitive()];
                v
            }
            InnerOptimizer::Adam {
                beta1,
                beta2,
                eps,
                eps_root,
            } => {
                let m = g.clone().mul_scalar(1.0 - beta1);
                let v = (g.clone() * g).mul_scalar(1.0 - beta2);
                let (m, v) = match (previous(0), previous(1)) {
                    (Some(m0), Some(v0)) => (m0.mul_scalar(beta1) + m, v0.mul_scalar(beta2) + v),
                    _ => (m, v),
                };
                *slot = vec![m.clone().into_primitive(), v.clone().into_primitive()];
                let t = (self.step + 1) as i32;
                let m_hat = m.mul_scalar(1.0 / (1.0 - beta1.powi(t)));
                let v_hat = v.mul_scalar(1.0 / (1.0 - beta2.powi(t)));
                m_hat / v_hat.add_scalar(eps_root).sqrt().add_scalar(eps)
            }
        }
    }
}

impl<B: Backend> ModuleMapper<MetaBackend<B>> for InnerUpdate<'_, B> {
    fn map_float<const D: usize>(
        &mut self,
        param: Param<Tensor<MetaBackend<B>, D>>,
    ) -> Param<Tensor<MetaBackend<B>, D>> {
        let index = self.index;
        self.index += 1;
        let (id, tensor, mapper) = param.consume();
        if !self.rule.adapted.get(index).copied().unwrap_or(true) {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let grad = match self.level {
            GradLevel::Meta => self.grads.get::<MetaBackend<B>, D>(id),
            GradLevel::Plain => self.grads.get::<B, D>(id).map(Tensor::from_inner),
        };
        // A parameter that does not feed the loss has a zero gradient: it stays.
        let Some(grad) = grad else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let direction = self.direction(index, grad);
        let step = match &self.rule.sizes {
            Sizes::Scalar => direction.mul_scalar(self.rule.inner_lr),
            Sizes::PerParameter(sizes) => {
                direction * Tensor::<MetaBackend<B>, D>::from_primitive(sizes[index].clone())
            }
            Sizes::PerStep(table) => {
                // Steps beyond the table's (more test steps than trained) repeat its last.
                let k = self.step.min(table.dims()[0].saturating_sub(1));
                let size = (*table).clone().slice([k..k + 1, index..index + 1]);
                direction * size.reshape([1; D])
            }
        };
        Param::from_mapped_value(id, tensor - step, mapper)
    }
}

/// The inner loop from fast weights `fast` (tracked on the meta backend), steps `steps`
/// (`k` counted from the loop's start, for per-step sizes and per-step model parts): each
/// step takes the support gradient, detached (first order) or tracked (second order),
/// and moves by the rule. Returns the fast weights at every step of the range, its start
/// first and its end last.
pub(crate) fn adapt_steps<B: Backend, M: Learnable<B>>(
    fast: M::Meta,
    support: &Sets<MetaBackend<B>>,
    support2: Option<&Sets<SecondOrder<B>>>,
    steps: Range<usize>,
    rule: &Rule<'_, B>,
    observe: &mut Observer<'_, B, M>,
) -> Vec<M::Meta> {
    let mut state: OptimizerState<B> = vec![Vec::new(); rule.adapted.len()];
    let mut states = Vec::with_capacity(steps.len() + 1);
    states.push(fast);
    for k in steps {
        let fast = states.last().expect("the loop's start is kept");
        let (grads, level) = match support2 {
            Some(support2) => {
                let lifted = lift_second::<B, M>(fast.clone());
                let pred =
                    <M as MetaModel<SecondOrder<B>>>::forward_at(&lifted, support2.x.clone(), k);
                let grads = support2.total_loss(pred).backward();
                (GradientsParams::from_grads(grads, &lifted), GradLevel::Meta)
            }
            None => {
                let leaves = detached_leaves::<B, M>(fast);
                let pred = <M::Meta as MetaModel<MetaBackend<B>>>::forward_at(
                    &leaves,
                    support.x.clone(),
                    k,
                );
                let grads = support.total_loss(pred).backward();
                (
                    GradientsParams::from_grads(grads, &leaves),
                    GradLevel::Plain,
                )
            }
        };
        observe(fast, &grads, level);
        let next = fast.clone().map(&mut InnerUpdate {
            grads: &grads,
            level,
            rule,
            step: k,
            state: &mut state,
            index: 0,
        });
        states.push(next);
    }
    states
}

/// Every parameter's value of a module on the meta backend (tracked), in visit order.
pub(crate) fn collect<B: Backend, M: Learnable<B>>(
    module: &M::Meta,
) -> Vec<TensorPrimitive<MetaBackend<B>>> {
    let mut visitor = Collect(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}
