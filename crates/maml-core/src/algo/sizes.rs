//! The learned inner step sizes a meta-gradient also differentiates: Meta-SGD's one per
//! parameter entry, or MAML++'s one per inner step and parameter tensor (LSLR).

use burn::module::Param;
use burn::prelude::*;

use crate::model::{Learnable, MetaBackend};

/// Learned inner step sizes, tracked on the meta backend, or none (`inner_lr`).
pub enum StepSizes<'a, B: Backend, M: Learnable<B>> {
    /// No learned sizes: every step moves by `inner_lr`.
    Fixed,
    /// Meta-SGD (Li et al. 2017): one per parameter entry, a module of the model's
    /// structure.
    PerEntry(&'a M::Meta),
    /// MAML++'s learned per-step, per-layer step sizes (Antoniou et al. 2019):
    /// `[K, P]`, the size of inner step `k` for the `p`-th parameter tensor in visit
    /// order ([`crate::algo::learn::param_count`] gives `P`). Its meta-gradient is
    /// registered under the parameter's id.
    PerStep(&'a Param<Tensor<MetaBackend<B>, 2>>),
}

impl<B: Backend, M: Learnable<B>> Clone for StepSizes<'_, B, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend, M: Learnable<B>> Copy for StepSizes<'_, B, M> {}

impl<'a, B: Backend, M: Learnable<B>> From<Option<&'a M::Meta>> for StepSizes<'a, B, M> {
    fn from(sizes: Option<&'a M::Meta>) -> Self {
        match sizes {
            Some(sizes) => Self::PerEntry(sizes),
            None => Self::Fixed,
        }
    }
}

impl<'a, B: Backend, M: Learnable<B>> StepSizes<'a, B, M> {
    /// Meta-SGD's per-entry sizes, if these are.
    pub fn per_entry(self) -> Option<&'a M::Meta> {
        match self {
            Self::PerEntry(sizes) => Some(sizes),
            _ => None,
        }
    }

    /// The per-step table, if these are.
    pub fn per_step(self) -> Option<&'a Param<Tensor<MetaBackend<B>, 2>>> {
        match self {
            Self::PerStep(table) => Some(table),
            _ => None,
        }
    }
}
