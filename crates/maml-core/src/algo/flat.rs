//! A model's parameters as one flat vector: the points and directions that implicit MAML
//! ([`crate::algo::implicit`]) and the checkpointed inner loop
//! ([`crate::algo::checkpointed`]) keep and combine between autodiff graphs.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn_autodiff::Autodiff;

use crate::model::{Learnable, MetaBackend};

/// A point or a direction in a model's parameter space: every parameter flattened, in
/// visit order, on `B`.
pub(crate) type Flat<B> = Vec<Tensor<B, 1>>;

/// Every parameter's value, flattened, in visit order, on the module's backend.
struct Flatten<B: Backend>(Flat<B>);

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.0.push(value.reshape([n]));
    }
}

/// Every parameter's gradient in `grads` (by id, on the backend `G` below the module's
/// autodiff level: `B` for a module on the meta backend, the meta backend, tracked, for
/// one on [`crate::model::SecondOrder`]), flattened, zero where a parameter does not feed
/// the loss.
pub(crate) struct FlatGrads<'a, G: Backend> {
    grads: &'a GradientsParams,
    out: Flat<G>,
}

impl<G: Backend> ModuleVisitor<Autodiff<G>> for FlatGrads<'_, G> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Autodiff<G>, D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        let grad = match self.grads.get::<G, D>(param.id) {
            Some(g) => g.reshape([n]),
            None => Tensor::zeros([n], &value.device()),
        };
        self.out.push(grad);
    }
}

/// Loads flattened values as fresh leaves that require gradients, keeping the ids.
struct LoadLeaves<B: Backend>(std::vec::IntoIter<Tensor<B, 1>>);

impl<B: Backend> ModuleMapper<MetaBackend<B>> for LoadLeaves<B> {
    fn map_float<const D: usize>(
        &mut self,
        param: Param<Tensor<MetaBackend<B>, D>>,
    ) -> Param<Tensor<MetaBackend<B>, D>> {
        let (id, tensor, mapper) = param.consume();
        let value = self
            .0
            .next()
            .expect("one value per parameter, flattened in the same visit order");
        let value = Tensor::from_inner(value.reshape(tensor.shape())).require_grad();
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Registers flattened gradients by the parameters' ids (and shapes) of a module.
struct Register<B: Backend> {
    values: std::vec::IntoIter<Tensor<B, 1>>,
    out: GradientsParams,
}

impl<B: Backend> ModuleVisitor<MetaBackend<B>> for Register<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<MetaBackend<B>, D>>) {
        let value = self
            .values
            .next()
            .expect("one gradient per parameter, flattened in the same visit order");
        let shape = param.val().shape();
        self.out.register::<B, D>(param.id, value.reshape(shape));
    }
}

/// A module's parameters, flattened, on its own backend (tracked where they are).
pub(crate) fn flatten_tracked<B: Backend, M: Module<B>>(module: &M) -> Flat<B> {
    let mut visitor = Flatten(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

/// The values of a module's parameters on the meta backend, flattened, on `B`.
pub(crate) fn flatten<B: Backend, M: Learnable<B>>(module: &M::Meta) -> Flat<B> {
    flatten_tracked(module)
        .into_iter()
        .map(Tensor::inner)
        .collect()
}

/// `template` with the values `values`, as fresh leaves that require gradients.
pub(crate) fn load<B: Backend, M: Learnable<B>>(template: &M::Meta, values: Flat<B>) -> M::Meta {
    template.clone().map(&mut LoadLeaves(values.into_iter()))
}

/// The gradients `grads` of `module`'s parameters, flattened (see [`FlatGrads`]).
pub(crate) fn flat_grads<G: Backend, M: Module<Autodiff<G>>>(
    module: &M,
    grads: &GradientsParams,
) -> Flat<G> {
    let mut visitor = FlatGrads {
        grads,
        out: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// Flattened gradients as a [`GradientsParams`] keyed by `module`'s parameter ids.
pub(crate) fn register<B: Backend, M: Learnable<B>>(
    module: &M::Meta,
    values: Flat<B>,
) -> GradientsParams {
    let mut visitor = Register {
        values: values.into_iter(),
        out: GradientsParams::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// `⟨a, b⟩` as a tensor `[1]`, on `a`'s and `b`'s backend (tracked where they are).
pub(crate) fn dot_tensor<B: Backend>(a: &Flat<B>, b: &Flat<B>) -> Tensor<B, 1> {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a.clone() * b.clone()).sum())
        .reduce(|s, t| s + t)
        .expect("a model has at least one parameter")
}

/// `⟨a, b⟩`.
pub(crate) fn dot<B: Backend>(a: &Flat<B>, b: &Flat<B>) -> f64 {
    // Read as f64 from the tensor's own float type: `into_scalar` gives the backend's
    // element type, f32 on Flex even when the device computes in f64.
    crate::model::to_f64(dot_tensor(a, b))[0]
}

/// `a + s·b`, entry by entry.
pub(crate) fn axpy<B: Backend>(a: Flat<B>, s: f64, b: &Flat<B>) -> Flat<B> {
    a.into_iter()
        .zip(b)
        .map(|(a, b)| a + b.clone().mul_scalar(s))
        .collect()
}

/// The gradient of initial weights `[1, ..]` shared by `tasks` task-batched copies
/// `[tasks, ..]` (flattened, task-major): the sum over the copies.
pub(crate) fn sum_tasks<B: Backend>(per_task: Flat<B>, tasks: usize) -> Flat<B> {
    per_task
        .into_iter()
        .map(|v| {
            let n = v.dims()[0] / tasks;
            v.reshape([tasks, n]).sum_dim(0).reshape([n])
        })
        .collect()
}
