//! The seam between MAML and a model: any Burn [`Module`] with a forward pass over a
//! meta-batch can be meta-learned.
//!
//! MAML needs a model on three backends: `B` (evaluation), [`MetaBackend<B>`] (the
//! meta-learned initial weights and the fast weights, tracked back to them) and
//! [`SecondOrder<B>`] (where second-order support gradients are taken). A
//! `#[derive(Module)]` struct generic over `B: Backend` is all three at once; the
//! [`Learnable`] trait names them from the type at the top, `Model<SecondOrder<B>>`.
//!
//! The walks over a module's parameters (fresh leaves, lifting, the inner update) are
//! [`ModuleMapper`]s, in Burn's own style: parameters are visited and mapped in one
//! deterministic order and keep their [`ParamId`]s, so gradients are paired by id.

pub mod layered;
pub mod mlp;
pub mod presets;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_autodiff::Autodiff;

use self::layered::Layered;
use self::mlp::Mlp;

/// The backend of the meta-learned initial weights: one autodiff level over `B`.
pub type MetaBackend<B> = Autodiff<B>;

/// Two autodiff levels: second-order inner gradients are taken here, and the backward
/// pass of this backend runs (tracked) on [`MetaBackend<B>`].
pub type SecondOrder<B> = Autodiff<Autodiff<B>>;

/// A model that MAML can meta-learn: a Burn module whose forward pass maps every task of
/// a meta-batch at once, `x [tasks, n, in] -> [tasks, n, out]`.
///
/// Layers must be written with differentiable-twice operations (`matmul` + `add`,
/// activations); Burn 0.21's fused `linear`, pooling, embedding and interpolate ops
/// cannot be differentiated twice, so `burn::nn::Linear::forward` must not be used in
/// second order.
///
/// # Task-batched models
/// A model whose every parameter has a leading task axis (size 1 in the initial weights)
/// sets [`MetaModel::TASK_BATCHED`]: the core then repeats the initial weights along that
/// axis, one copy of fast weights per task, and runs a whole meta-batch through one set of
/// tensor operations (the built-in [`crate::model::mlp::Mlp`] does this). Any other model is
/// run task by task, `tasks = 1` per forward call, with its parameters as they are: simpler
/// to write, slower for large meta-batches.
pub trait MetaModel<B: Backend>: Module<B> {
    /// Whether every parameter's first axis is the task axis (see the trait's docs).
    const TASK_BATCHED: bool = false;

    /// Predictions for `x [tasks, n, in]`, `[tasks, n, out]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3>;

    /// Predictions of the fast weights after `step` inner steps (`step = 0`: the initial
    /// weights). A model with per-step parts (MAML++'s per-step batch-norm weights) uses
    /// the set of that step; every other model keeps the default, [`Self::forward`].
    fn forward_at(&self, x: Tensor<B, 3>, step: usize) -> Tensor<B, 3> {
        let _ = step;
        self.forward(x)
    }

    /// The parameters, by index in visit order, that the inner loop never adapts
    /// whatever the configuration: meta-parameters such as per-step batch-norm sets.
    fn fixed_params(&self) -> Vec<usize> {
        Vec::new()
    }

    /// The model as the built-in [`Mlp`], if it is one: MAML then takes its meta-gradient
    /// by hand-derived back-propagation ([`crate::config::GradientPath::Auto`]) instead of
    /// nested autodiff. Other models keep the default, `None`.
    fn as_mlp(&self) -> Option<&Mlp<B>> {
        None
    }
}

/// A model type that can be meta-learned on backend `B`, named at the top of the stack:
/// `M = Model<SecondOrder<B>>`, with [`Learnable::Meta`] = `Model<MetaBackend<B>>` and
/// [`Learnable::Plain`] = `Model<B>`. Implemented for every `#[derive(Module)]` struct
/// that implements [`MetaModel`] for every backend.
pub trait Learnable<B: Backend>:
    MetaModel<SecondOrder<B>> + AutodiffModule<SecondOrder<B>, InnerModule = Self::Meta>
{
    /// The model on the meta backend: the initial weights and the fast weights.
    type Meta: MetaModel<MetaBackend<B>> + AutodiffModule<MetaBackend<B>, InnerModule = Self::Plain>;
    /// The model on the plain backend, for evaluation.
    type Plain: MetaModel<B>;
}

impl<B, M> Learnable<B> for M
where
    B: Backend,
    M: MetaModel<SecondOrder<B>> + AutodiffModule<SecondOrder<B>>,
    M::InnerModule: MetaModel<MetaBackend<B>> + AutodiffModule<MetaBackend<B>>,
    <M::InnerModule as AutodiffModule<MetaBackend<B>>>::InnerModule: MetaModel<B>,
{
    type Meta = M::InnerModule;
    type Plain = <M::InnerModule as AutodiffModule<MetaBackend<B>>>::InnerModule;
}

/// Replaces every parameter by a fresh leaf that requires gradients, detached from any
/// earlier graph, keeping its id.
pub struct FreshLeaves;

impl<B: Backend> ModuleMapper<B> for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
    }
}

/// Replaces every parameter by a detached copy that does not require gradients, keeping
/// its id: how a learner stores weights between meta steps.
pub(crate) struct Untracked;

impl<B: Backend> ModuleMapper<B> for Untracked {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        // `detach` alone keeps a leaf's `require_grad` (Burn 0.21).
        Param::from_mapped_value(id, tensor.detach().set_require_grad(false), mapper)
    }
}

/// Marks every parameter as requiring gradients (a leaf once lifted by `from_inner`).
struct RequireGrad;

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.require_grad(), mapper)
    }
}

/// Repeats every parameter `tasks` times along its leading (task) axis.
pub(crate) struct RepeatTasks(pub usize);

impl<B: Backend> ModuleMapper<B> for RepeatTasks {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = if tensor.dims()[0] == self.0 {
            tensor
        } else {
            tensor.repeat_dim(0, self.0)
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Sets every parameter to `value`, with new ids (Meta-SGD's step sizes start so).
pub(crate) struct Fill(pub f64);

impl<B: Backend> ModuleMapper<B> for Fill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = param.consume();
        let filled = tensor.detach().ones_like().mul_scalar(self.0);
        Param::from_mapped_value(ParamId::new(), filled, mapper)
    }
}

/// The lift of (fast) weights from the meta backend to [`SecondOrder<B>`] as leaves that
/// require gradients (`Param::from_inner` alone keeps a non-leaf's "no gradient" flag).
pub(crate) fn lift_second<B: Backend, M: Learnable<B>>(fast: M::Meta) -> M {
    M::from_inner(fast).map(&mut RequireGrad)
}

/// A detached copy of (fast) weights on the meta backend, as leaves that require
/// gradients: the first-order support gradient is taken there.
pub(crate) fn detached_leaves<B: Backend, M: Learnable<B>>(fast: &M::Meta) -> M::Meta {
    <M::Meta as AutodiffModule<MetaBackend<B>>>::from_inner(fast.valid()).map(&mut RequireGrad)
}

/// Every parameter's value, in visit order, on the backend it lives on.
pub(crate) struct Collect<B: Backend>(pub Vec<TensorPrimitive<B>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().into_primitive());
    }
}

/// Where a support gradient lives: on the meta backend (second order, tracked) or on
/// `B` (first order, a constant once lifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradLevel {
    /// On the meta backend, tracked: second order differentiates through it.
    Meta,
    /// On `B`: first order, a constant of the meta-gradient.
    Plain,
}

/// Replaces every parameter's value, in visit order, keeping its id (fast weights
/// computed outside the module are loaded so).
pub(crate) struct Load<B: Backend>(pub std::vec::IntoIter<TensorPrimitive<B>>);

impl<B: Backend> ModuleMapper<B> for Load<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, _, mapper) = param.consume();
        let value = self
            .0
            .next()
            .expect("one value per parameter, collected in the same visit order");
        Param::from_mapped_value(id, Tensor::from_primitive(value), mapper)
    }
}

impl<B: Backend> MetaModel<B> for Mlp<B> {
    const TASK_BATCHED: bool = true;

    fn as_mlp(&self) -> Option<&Mlp<B>> {
        Some(self)
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(x, |h, (l, layer)| {
            let h = layer.forward(h);
            if l < last {
                self.activation.apply(h)
            } else {
                h
            }
        })
    }
}

/// The layered model runs task by task: each task's examples go through the layers on
/// their own, so batch norm's statistics are the task's.
/// A per-step batch norm uses its last set in [`MetaModel::forward`] (the fast weights'
/// own after the inner steps it was trained with) and set `min(step, last)` in
/// [`MetaModel::forward_at`]: more test steps than training steps keep the last set.
impl<B: Backend> MetaModel<B> for Layered<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_at(x, usize::MAX)
    }

    fn forward_at(&self, x: Tensor<B, 3>, step: usize) -> Tensor<B, 3> {
        let [tasks, n, d_in] = x.dims();
        let per_task = (0..tasks)
            .map(|t| {
                let task = x.clone().slice(t..t + 1).reshape([n, d_in]);
                self.forward_task_at(task, step).unsqueeze_dim(0)
            })
            .collect();
        Tensor::cat(per_task, 0)
    }

    fn fixed_params(&self) -> Vec<usize> {
        self.per_step_params()
    }
}

/// Checks that tensors created on `device` will have `B`'s float type. Burn 0.21 keeps
/// one default float type per device type per process, fixed by the first tensor made:
/// after `NdArray<f32>` has run, `NdArray<f64>` tensors on the same device would silently
/// be f32. This locks the default to `B`'s type if nothing did yet, and reports a
/// mismatch otherwise.
pub fn check_device_precision<B: Backend>(device: &B::Device) -> crate::error::Result<()> {
    use burn::tensor::Element;
    let wanted = <B::FloatElem as Element>::dtype();
    let actual: burn::tensor::DType = burn::tensor::get_device_settings::<B>(device)
        .float_dtype
        .into();
    // Flex has one backend type and takes its float type from the device settings.
    if actual == wanted || B::name(device) == "flex" {
        Ok(())
    } else {
        Err(crate::error::MamlError::Precision {
            backend: B::name(device),
            wanted: format!("{wanted:?}"),
            actual: format!("{actual:?}"),
        })
    }
}

/// Reads a tensor's values as `f64`, row-major.
pub fn to_f64<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f64> {
    tensor.into_data().iter::<f64>().collect()
}

/// Whether autodiff records operations on `tensor`, PyTorch's `requires_grad`: true for a
/// leaf marked with `require_grad` and for anything computed from one. (Burn's
/// `Tensor::is_require_grad` is true for such leaves alone.)
pub fn is_tracked<B: Backend, const D: usize>(tensor: &Tensor<Autodiff<B>, D>) -> bool {
    tensor.clone().into_primitive().tensor().is_tracked()
}
