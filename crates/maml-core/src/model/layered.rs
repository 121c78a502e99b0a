//! The built-in layered model: a list of conv2d, batch norm, ReLU / tanh, max pooling,
//! spatial mean, flatten and linear layers, each written with operations Burn 0.21 can
//! differentiate twice (conv2d, `matmul`, elementwise ops, `reshape`, `max_dim`,
//! `mean_dim`), so MAML's second order runs through every one of them.
//!
//! Examples reach the model flattened, `x [tasks, n, C·H·W]` (row-major `[C, H, W]`), as
//! every model of the seam takes them; the model reshapes them to `[n, C, H, W]`.
//! Batch norm uses the statistics of the images it is given, per task: the support set's
//! in the inner loop, the query set's for the query loss. The model runs task by task
//! (its parameters have no task axis), so no statistics mix tasks.

use burn::module::{Module, Param};
use burn::nn::{Relu, Tanh};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::data::layers::{Array, LayerSpec, LayerWeights, LayeredSpec, LayeredWeights};
use crate::error::Result;

/// Batch norm's ε, as PyTorch's default.
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// A 2-D convolution, `[n, C, H, W] -> [n, O, H', W']`.
#[derive(Module, Debug)]
pub struct Conv2dLayer<B: Backend> {
    /// `[O, C, k, k]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[O]`.
    pub bias: Param<Tensor<B, 1>>,
    /// The kernel's step, both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// Batch norm on the batch's own statistics, `[n, C, H, W]` (per channel) or `[n, F]`.
#[derive(Module, Debug)]
pub struct BatchNormLayer<B: Backend> {
    /// γ, `[C]`.
    pub weight: Param<Tensor<B, 1>>,
    /// β, `[C]`.
    pub bias: Param<Tensor<B, 1>>,
}

/// A dense layer, `[n, F] -> [n, O]`, as `matmul` + `add` (Burn's fused `linear` cannot
/// be differentiated twice).
#[derive(Module, Debug)]
pub struct DenseLayer<B: Backend> {
    /// `[O, F]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[O]`.
    pub bias: Param<Tensor<B, 1>>,
}

/// `k x k` max pooling with stride `k`, as `reshape` + `max_dim`.
#[derive(Module, Clone, Debug)]
pub struct MaxPool2dLayer {
    /// The window size and stride.
    pub kernel: usize,
}

/// `[n, C, H, W] -> [n, C]`, the mean over positions.
#[derive(Module, Clone, Debug, Default)]
pub struct MeanSpatialLayer;

/// `[n, C, H, W] -> [n, C·H·W]`.
#[derive(Module, Clone, Debug, Default)]
pub struct FlattenLayer;

/// One layer of a [`Layered`] model.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer<B: Backend> {
    /// See [`Conv2dLayer`].
    Conv2d(Conv2dLayer<B>),
    /// See [`BatchNormLayer`].
    BatchNorm(BatchNormLayer<B>),
    /// `max(0, x)`.
    Relu(Relu),
    /// `tanh(x)`.
    Tanh(Tanh),
    /// See [`MaxPool2dLayer`].
    MaxPool2d(MaxPool2dLayer),
    /// See [`MeanSpatialLayer`].
    MeanSpatial(MeanSpatialLayer),
    /// See [`FlattenLayer`].
    Flatten(FlattenLayer),
    /// See [`DenseLayer`].
    Linear(DenseLayer<B>),
}

/// A tensor between layers: images or vectors.
enum Activations<B: Backend> {
    Images(Tensor<B, 4>),
    Vectors(Tensor<B, 2>),
}

impl<B: Backend> Layer<B> {
    fn forward(&self, h: Activations<B>) -> Activations<B> {
        use Activations::{Images, Vectors};
        match (self, h) {
            (Layer::Conv2d(c), Images(x)) => {
                let options = ConvOptions::new([c.stride; 2], [c.padding; 2], [1, 1], 1);
                Images(conv2d(x, c.weight.val(), Some(c.bias.val()), options))
            }
            (Layer::BatchNorm(bn), Images(x)) => {
                // On channel-major rows `[C, n·H·W]` every statistic is one number per
                // row, a broadcast that Flex runs on its SIMD path, forward and in both
                // backward levels; `[n, C, H, W]` against `[1, C, 1, 1]` went through
                // its strided iterator element by element (most of a meta step).
                let [n, c, h, w] = x.dims();
                let rows: Tensor<B, 2> = x.swap_dims(0, 1).reshape([c, n * h * w]);
                let mean = rows.clone().mean_dim(1);
                let centred = rows - mean;
                let var = (centred.clone() * centred.clone()).mean_dim(1);
                let normed = centred / var.add_scalar(BATCH_NORM_EPS).sqrt();
                let out = normed * bn.weight.val().reshape([c, 1]) + bn.bias.val().reshape([c, 1]);
                Images(out.reshape([c, n, h, w]).swap_dims(0, 1))
            }
            (Layer::BatchNorm(bn), Vectors(x)) => {
                let [_, f] = x.dims();
                let mean = x.clone().mean_dim(0);
                let centred = x - mean;
                let var = (centred.clone() * centred.clone()).mean_dim(0);
                let normed = centred / var.add_scalar(BATCH_NORM_EPS).sqrt();
                Vectors(normed * bn.weight.val().reshape([1, f]) + bn.bias.val().reshape([1, f]))
            }
            (Layer::Relu(_), Images(x)) => Images(activation::relu(x)),
            (Layer::Relu(_), Vectors(x)) => Vectors(activation::relu(x)),
            (Layer::Tanh(_), Images(x)) => Images(activation::tanh(x)),
            (Layer::Tanh(_), Vectors(x)) => Vectors(activation::tanh(x)),
            (Layer::MaxPool2d(p), Images(x)) => {
                let [n, c, h, w] = x.dims();
                let k = p.kernel;
                let (h2, w2) = (h / k, w / k);
                // Rows, then columns: each a split of one axis and a `max_dim`. The
                // leftover rows and columns are sliced off first and the slice copied
                // (an elementwise op) before the split: reshaping a sliced view gave
                // wrong values on wgpu (cubecl 0.10, lavapipe).
                let x = if h2 * k == h {
                    x
                } else {
                    x.slice([0..n, 0..c, 0..h2 * k, 0..w]).mul_scalar(1.0)
                };
                let rows: Tensor<B, 5> = x.reshape([n, c, h2, k, w]);
                let x: Tensor<B, 4> = rows.max_dim(3).reshape([n, c, h2, w]);
                let x = if w2 * k == w {
                    x
                } else {
                    x.slice([0..n, 0..c, 0..h2, 0..w2 * k]).mul_scalar(1.0)
                };
                let cols: Tensor<B, 5> = x.reshape([n, c, h2, w2, k]);
                Images(cols.max_dim(4).reshape([n, c, h2, w2]))
            }
            (Layer::MeanSpatial(_), Images(x)) => {
                let [n, c, h, w] = x.dims();
                let positions: Tensor<B, 3> = x.reshape([n, c, h * w]);
                Vectors(positions.mean_dim(2).reshape([n, c]))
            }
            (Layer::Flatten(_), Images(x)) => {
                let [n, c, h, w] = x.dims();
                Vectors(x.reshape([n, c * h * w]))
            }
            (Layer::Linear(d), Vectors(x)) => {
                let [o, _] = d.weight.dims();
                Vectors(x.matmul(d.weight.val().transpose()) + d.bias.val().reshape([1, o]))
            }
            (layer, _) => unreachable!(
                "LayeredSpec::validate checks every layer's input kind, here {layer:?}"
            ),
        }
    }
}

/// A layered model: the shape of one example and the layers.
#[derive(Module, Debug)]
pub struct Layered<B: Backend> {
    /// The layers, applied in order.
    pub layers: Vec<Layer<B>>,
    /// `[C, H, W]` for images, `[F]` for vectors.
    pub input: Vec<usize>,
}

fn tensor<B: Backend, const D: usize>(array: &Array, device: &B::Device) -> Param<Tensor<B, D>> {
    let shape: [usize; D] = array
        .shape
        .clone()
        .try_into()
        .expect("LayeredSpec::validate checks every array's rank");
    Param::from_tensor(Tensor::from_data(
        TensorData::new(array.values.clone(), shape),
        device,
    ))
}

fn array<B: Backend, const D: usize>(param: &Param<Tensor<B, D>>) -> Array {
    let t = param.val();
    Array::new(t.dims().to_vec(), t.into_data().iter::<f64>().collect())
}

impl<B: Backend> Layered<B> {
    /// The model of a layer list, validated.
    pub fn from_spec(spec: &LayeredSpec, device: &B::Device) -> Result<Self> {
        spec.validate()?;
        let layers = spec
            .layers
            .iter()
            .map(|layer| match layer {
                LayerSpec::Conv2d {
                    weight,
                    bias,
                    stride,
                    padding,
                } => Layer::Conv2d(Conv2dLayer {
                    weight: tensor(weight, device),
                    bias: tensor(bias, device),
                    stride: *stride,
                    padding: *padding,
                }),
                LayerSpec::BatchNorm { weight, bias } => Layer::BatchNorm(BatchNormLayer {
                    weight: tensor(weight, device),
                    bias: tensor(bias, device),
                }),
                LayerSpec::Relu => Layer::Relu(Relu),
                LayerSpec::Tanh => Layer::Tanh(Tanh),
                LayerSpec::MaxPool2d { kernel } => {
                    Layer::MaxPool2d(MaxPool2dLayer { kernel: *kernel })
                }
                LayerSpec::MeanSpatial => Layer::MeanSpatial(MeanSpatialLayer),
                LayerSpec::Flatten => Layer::Flatten(FlattenLayer),
                LayerSpec::Linear { weight, bias } => Layer::Linear(DenseLayer {
                    weight: tensor(weight, device),
                    bias: tensor(bias, device),
                }),
            })
            .collect();
        Ok(Self {
            layers,
            input: spec.input.clone(),
        })
    }

    /// The model's parameters, layer by layer (`{}` for layers without any).
    pub fn to_weights(&self) -> LayeredWeights {
        let pair = |weight: Array, bias: Array| LayerWeights {
            weight: Some(weight),
            bias: Some(bias),
        };
        LayeredWeights {
            layers: self
                .layers
                .iter()
                .map(|layer| match layer {
                    Layer::Conv2d(c) => pair(array(&c.weight), array(&c.bias)),
                    Layer::BatchNorm(b) => pair(array(&b.weight), array(&b.bias)),
                    Layer::Linear(d) => pair(array(&d.weight), array(&d.bias)),
                    _ => LayerWeights::default(),
                })
                .collect(),
        }
    }

    /// The model as a layer list with its current weights.
    pub fn to_spec(&self) -> LayeredSpec {
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                Layer::Conv2d(c) => LayerSpec::Conv2d {
                    weight: array(&c.weight),
                    bias: array(&c.bias),
                    stride: c.stride,
                    padding: c.padding,
                },
                Layer::BatchNorm(b) => LayerSpec::BatchNorm {
                    weight: array(&b.weight),
                    bias: array(&b.bias),
                },
                Layer::Relu(_) => LayerSpec::Relu,
                Layer::Tanh(_) => LayerSpec::Tanh,
                Layer::MaxPool2d(p) => LayerSpec::MaxPool2d { kernel: p.kernel },
                Layer::MeanSpatial(_) => LayerSpec::MeanSpatial,
                Layer::Flatten(_) => LayerSpec::Flatten,
                Layer::Linear(d) => LayerSpec::Linear {
                    weight: array(&d.weight),
                    bias: array(&d.bias),
                },
            })
            .collect();
        LayeredSpec {
            input: self.input.clone(),
            layers,
        }
    }

    /// Predictions for `n` flattened examples of one task, `x [n, C·H·W] -> [n, out]`.
    pub fn forward_task(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, _] = x.dims();
        let start = match self.input[..] {
            [c, h, w] => Activations::Images(x.reshape([n, c, h, w])),
            _ => Activations::Vectors(x),
        };
        match self.layers.iter().fold(start, |h, layer| layer.forward(h)) {
            Activations::Vectors(y) => y,
            Activations::Images(_) => {
                unreachable!("LayeredSpec::validate checks that the model ends in vectors")
            }
        }
    }
}
