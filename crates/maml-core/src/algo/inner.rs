//! The steps of the inner loop for any model, on the meta backend: what MAML's
//! meta-gradient ([`crate::algo::learn`]) runs once and the checkpointed one
//! ([`crate::algo::checkpointed`]) runs again segment by segment.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::data::batch::Sets;
use crate::model::{
    Collect, GradLevel, InnerUpdate, Learnable, MetaBackend, MetaModel, SecondOrder, StepSizes,
    detached_leaves, lift_second,
};

/// What an inner loop shows each step, before it moves: the fast weights and their
/// support gradient, by parameter id, on the meta backend (tracked, second order) or on
/// `B` (first order). A trace of the inner loop records it (`maml trace`).
pub type Observer<'a, B, M> =
    dyn FnMut(&<M as Learnable<B>>::Meta, &GradientsParams, GradLevel) + 'a;

/// The inner loop from fast weights `fast` (tracked on the meta backend): each step takes
/// the support gradient, detached (first order) or tracked (second order), and moves by
/// `α ⊙ g`.
pub(crate) fn adapt_steps<B: Backend, M: Learnable<B>>(
    mut fast: M::Meta,
    support: &Sets<MetaBackend<B>>,
    support2: Option<&Sets<SecondOrder<B>>>,
    inner_steps: usize,
    sizes: &[TensorPrimitive<MetaBackend<B>>],
    inner_lr: f64,
    observe: &mut Observer<'_, B, M>,
) -> M::Meta {
    for _ in 0..inner_steps {
        let (grads, level) = match support2 {
            Some(support2) => {
                let lifted = lift_second::<B, M>(fast.clone());
                let pred = <M as MetaModel<SecondOrder<B>>>::forward(&lifted, support2.x.clone());
                let grads = support2.total_loss(pred).backward();
                (GradientsParams::from_grads(grads, &lifted), GradLevel::Meta)
            }
            None => {
                let leaves = detached_leaves::<B, M>(&fast);
                let pred =
                    <M::Meta as MetaModel<MetaBackend<B>>>::forward(&leaves, support.x.clone());
                let grads = support.total_loss(pred).backward();
                (
                    GradientsParams::from_grads(grads, &leaves),
                    GradLevel::Plain,
                )
            }
        };
        observe(&fast, &grads, level);
        let sizes = if sizes.is_empty() {
            StepSizes::Scalar(inner_lr)
        } else {
            StepSizes::PerParameter(sizes)
        };
        fast = fast.map(&mut InnerUpdate {
            grads: &grads,
            level,
            sizes,
            index: 0,
        });
    }
    fast
}

/// Every parameter's value of a module on the meta backend (tracked), in visit order.
pub(crate) fn collect<B: Backend, M: Learnable<B>>(
    module: &M::Meta,
) -> Vec<TensorPrimitive<MetaBackend<B>>> {
    let mut visitor = Collect(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}
