//! Every shared version-3 reference problem answered by a network assembled from
//! `maml_core::nn` layers (a user's module, run through the seam and nested autodiff),
//! compared with PyTorch float64: the layers are twice differentiable and compute what
//! PyTorch's `F.conv2d`, `F.batch_norm(training=True)`, `F.max_pool2d`, the spatial mean,
//! `flatten` and `F.linear` compute.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use maml_burn::maml_core::data::layers::{
    Array, LayerSpec, LayerWeights, LayeredSpec, LayeredWeights,
};
use maml_burn::maml_core::nn::{BatchNorm, Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d};
use maml_burn::maml_core::{Fast, MetaBatch, MetaConfig, MetaModel, ModelLearner, SecondOrder};
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::InnerLr;
use maml_burn::maml_data::problem::Problem;

use crate::reference_conv::for_each_conv_problem;

/// One layer of [`NnNet`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
enum NnLayer<B: Backend> {
    Conv2d(Conv2d<B>),
    BatchNorm(BatchNorm<B>),
    Relu(burn::nn::Relu),
    Tanh(burn::nn::Tanh),
    MaxPool2d(MaxPool2d),
    MeanSpatial(GlobalAvgPool2d),
    Flatten(Flatten),
    Linear(Linear<B>),
}

/// A network of `maml_core::nn` layers, as a user would write one (no task axis: the
/// core runs it task by task).
#[derive(Module, Debug)]
struct NnNet<B: Backend> {
    layers: Vec<NnLayer<B>>,
    /// `[C, H, W]` or `[F]`.
    input: Vec<usize>,
}

enum Act<B: Backend> {
    Images(Tensor<B, 4>),
    Vectors(Tensor<B, 2>),
}

impl<B: Backend> MetaModel<B> for NnNet<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [tasks, n, d] = x.dims();
        let mut h = match self.input[..] {
            [c, height, width] => Act::Images(x.reshape([tasks * n, c, height, width])),
            _ => Act::Vectors(x.reshape([tasks * n, d])),
        };
        for layer in &self.layers {
            h = match (layer, h) {
                (NnLayer::Conv2d(l), Act::Images(x)) => Act::Images(l.forward(x)),
                (NnLayer::BatchNorm(l), Act::Images(x)) => Act::Images(l.forward(x)),
                (NnLayer::BatchNorm(l), Act::Vectors(x)) => Act::Vectors(l.forward(x)),
                (NnLayer::Relu(l), Act::Images(x)) => Act::Images(l.forward(x)),
                (NnLayer::Relu(l), Act::Vectors(x)) => Act::Vectors(l.forward(x)),
                (NnLayer::Tanh(l), Act::Images(x)) => Act::Images(l.forward(x)),
                (NnLayer::Tanh(l), Act::Vectors(x)) => Act::Vectors(l.forward(x)),
                (NnLayer::MaxPool2d(l), Act::Images(x)) => Act::Images(l.forward(x)),
                (NnLayer::MeanSpatial(l), Act::Images(x)) => Act::Vectors(l.forward(x)),
                (NnLayer::Flatten(l), Act::Images(x)) => Act::Vectors(l.forward(x)),
                (NnLayer::Linear(l), Act::Vectors(x)) => Act::Vectors(l.forward(x)),
                _ => panic!("the validated layer list fits its inputs"),
            };
        }
        let Act::Vectors(out) = h else {
            panic!("a validated layer list ends with vectors")
        };
        let [_, o] = out.dims();
        out.reshape([tasks, n, o])
    }
}

fn tensor<B: Backend, const D: usize>(a: &Array, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(a.values.clone(), a.shape.clone()), device)
}

fn param<B: Backend, const D: usize>(
    a: &Array,
    device: &B::Device,
) -> burn::module::Param<Tensor<B, D>> {
    burn::module::Param::from_tensor(tensor(a, device))
}

/// The network of a layer list, with its weights (`nn::Linear` keeps `[in, out]`, the
/// files `[out, in]`).
fn build<B: Backend>(spec: &LayeredSpec, device: &B::Device) -> NnNet<B> {
    let layers = spec
        .layers
        .iter()
        .map(|layer| match layer {
            LayerSpec::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => NnLayer::Conv2d(Conv2d {
                weight: param(weight, device),
                bias: Some(param(bias, device)),
                stride: [*stride; 2],
                padding: [*padding; 2],
            }),
            LayerSpec::BatchNorm { weight, bias, .. } => NnLayer::BatchNorm(BatchNorm {
                gamma: param(weight, device),
                beta: param(bias, device),
                epsilon: 1e-5,
            }),
            LayerSpec::Relu => NnLayer::Relu(burn::nn::Relu),
            LayerSpec::Tanh => NnLayer::Tanh(burn::nn::Tanh),
            LayerSpec::MaxPool2d { kernel } => NnLayer::MaxPool2d(MaxPool2d {
                kernel_size: [*kernel; 2],
            }),
            LayerSpec::MeanSpatial => NnLayer::MeanSpatial(GlobalAvgPool2d),
            LayerSpec::Flatten => NnLayer::Flatten(Flatten),
            LayerSpec::Linear { weight, bias } => NnLayer::Linear(Linear {
                weight: burn::module::Param::from_tensor(
                    tensor::<B, 2>(weight, device).transpose(),
                ),
                bias: Some(param(bias, device)),
            }),
        })
        .collect();
    NnNet {
        layers,
        input: spec.input.clone(),
    }
}

/// Reads a parameter of rank 1, 2 or 4: its gradient from `grads` (tensors of `G`; zeros
/// without one), or its own value when `grads` is `None`.
fn read<A: Backend, G: Backend<Device = A::Device>, const D: usize>(
    param: &burn::module::Param<Tensor<A, D>>,
    grads: Option<&GradientsParams>,
) -> Tensor<G, D> {
    let value = || Tensor::<G, D>::from_data(param.val().into_data(), &param.val().device());
    match grads {
        Some(g) => g
            .get::<G, D>(param.id)
            .unwrap_or_else(|| value().zeros_like()),
        None => value(),
    }
}

fn array<G: Backend, const D: usize>(t: Tensor<G, D>) -> Array {
    let shape = t.dims().to_vec();
    Array::new(shape, t.into_data().iter::<f64>().collect())
}

/// The network's weights (or, with `grads`, its gradients) in the files' layout.
fn weights<A: Backend, G: Backend<Device = A::Device>>(
    net: &NnNet<A>,
    grads: Option<&GradientsParams>,
) -> LayeredWeights {
    let pair = |w: Array, b: Array| LayerWeights {
        weight: Some(w),
        bias: Some(b),
    };
    let layers = net
        .layers
        .iter()
        .map(|layer| match layer {
            NnLayer::Conv2d(l) => pair(
                array(read::<A, G, 4>(&l.weight, grads)),
                array(read::<A, G, 1>(
                    l.bias.as_ref().expect("built with a bias"),
                    grads,
                )),
            ),
            NnLayer::BatchNorm(l) => pair(
                array(read::<A, G, 1>(&l.gamma, grads)),
                array(read::<A, G, 1>(&l.beta, grads)),
            ),
            NnLayer::Linear(l) => pair(
                array(read::<A, G, 2>(&l.weight, grads).transpose()),
                array(read::<A, G, 1>(
                    l.bias.as_ref().expect("built with a bias"),
                    grads,
                )),
            ),
            _ => LayerWeights::default(),
        })
        .collect();
    LayeredWeights { layers }
}

/// The problem answered by the `nn` network through `ModelLearner` (nested autodiff).
fn solve_nn<B: Backend>(problem: &Problem, device: &B::Device) -> Answer {
    let d_out = problem.validate().unwrap();
    let batch = MetaBatch::<B>::from_tasks(&problem.tasks, d_out, device);
    let config = MetaConfig::new(problem.adapt_config());
    let mut learner =
        ModelLearner::<B, NnNet<SecondOrder<B>>>::new(build(&problem.model, device), config)
            .unwrap();
    if let InnerLr::PerParameter(sizes) = &problem.inner_lr {
        learner = learner.with_step_sizes(build(&problem.model.with_weights(sizes), device));
    }
    let gradient = learner.meta_gradient(&batch);
    let Some(Fast::PerTask(fast)) = &gradient.fast else {
        panic!("an nn network runs task by task and keeps its fast weights")
    };
    Answer {
        // `into_data`, not `into_scalar`: Flex's nominal element type is f32 in either precision.
        meta_loss: gradient
            .meta_loss
            .clone()
            .into_data()
            .iter::<f64>()
            .next()
            .expect("[1]"),
        meta_grad: weights::<_, B>(learner.model(), Some(&gradient.grads)),
        inner_lr_grad: learner
            .step_sizes()
            .zip(gradient.step_size_grads.as_ref())
            .map(|(sizes, grads)| weights::<_, B>(sizes, Some(grads))),
        fast_weights: fast.iter().map(|net| weights::<B, B>(net, None)).collect(),
    }
}

/// All twelve on the CPU backends (1e-4 in f32, 1e-9 in f64 of the largest entry); on
/// wgpu (a software device here) three that cover max pooling with a leftover row and
/// column, Meta-SGD, batch norm, flatten, first order and cross-entropy.
fn every_conv_reference_problem_through_nn_layers<B: Backend>(device: &B::Device) {
    for_each_conv_problem::<B>(device, " (nn layers)", |problem| {
        solve_nn::<B>(problem, device)
    });
}

crate::backend_tests!(every_conv_reference_problem_through_nn_layers);
