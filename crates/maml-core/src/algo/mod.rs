//! The algorithm: the inner loop (adaptation to each task's support set) and the
//! meta-gradient of the query loss with respect to the initial weights, first or second
//! order, MAML or Meta-SGD, or implicit (iMAML).
//!
//! - [`learn`]: any model through the seam ([`crate::model::MetaModel`]), by nested
//!   autodiff, or by the model's hand-derived road where it offers one;
//! - [`learner`]: the meta-learner, which updates the initial weights (and Meta-SGD's step
//!   sizes) with the meta-gradient;
//! - [`gradient`]: what both return, fast weights and meta-gradients;
//! - [`checkpointed`]: MAML's exact meta-gradient in bounded memory, the inner loop
//!   recomputed between kept fast weights (gradient checkpointing);
//! - [`implicit`]: implicit MAML (iMAML), the meta-gradient at a proximal inner optimum
//!   by conjugate gradient on Hessian-vector products;
//! - [`analytic`]: the hand-derived roads (the built-in MLP's back-propagation with exact
//!   Hessian-vector products, and the linear model's affine inner steps).

pub mod adapt;
pub mod analytic;
pub mod checkpointed;
pub(crate) mod flat;
pub mod gradient;
pub mod implicit;
pub(crate) mod inner;
pub mod learn;
pub mod learner;
pub mod meta_loss;
pub mod reptile;
pub mod sizes;
