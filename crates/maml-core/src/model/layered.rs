//! The built-in layered model: a list of conv2d, batch norm, ReLU / tanh, max pooling,
//! spatial mean, flatten and linear layers, each written with operations Burn 0.21 can
//! differentiate twice (`select`, `matmul`, elementwise ops, `reshape`, `max_dim`,
//! `mean_dim`), so MAML's second order runs through every one of them.
//!
//! Examples reach the model flattened, `x [tasks, n, C·H·W]` (row-major `[C, H, W]`), as
//! every model of the seam takes them; between layers images are channel-major,
//! `[C, n, H, W]`, and convolutions are a gather of patches and one matrix product.
//! Batch norm uses the statistics of the images it is given, per task: the support set's
//! in the inner loop, the query set's for the query loss. The model runs task by task
//! (its parameters have no task axis), so no statistics mix tasks.

use burn::module::{Module, Param};
use burn::nn::{Relu, Tanh};
use burn::prelude::*;
use burn::tensor::activation;

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

/// MAML++'s per-step batch norm: set `min(k, S − 1)` of γ and β for the network run with
/// the fast weights after `k` inner steps (meta-parameters: never adapted).
#[derive(Module, Debug)]
pub struct StepBatchNormLayer<B: Backend> {
    /// γ, `[S, C]`.
    pub weight: Param<Tensor<B, 2>>,
    /// β, `[S, C]`.
    pub bias: Param<Tensor<B, 2>>,
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
    /// See [`StepBatchNormLayer`].
    StepBatchNorm(StepBatchNormLayer<B>),
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

/// A tensor between layers: images, channel-major `[C, n, H, W]`, or vectors `[n, F]`.
///
/// Channel-major images keep every tensor of the forward pass and of both backward levels
/// contiguous: a convolution is one matrix product `[O, C·k·k] x [C·k·k, n·H'·W']` that
/// yields `[O, n·H'·W']`, batch norm's statistics are per-row scalars of `[C, n·H·W]`,
/// and nothing is transposed between layers.
enum Activations<B: Backend> {
    Images(Tensor<B, 4>),
    Vectors(Tensor<B, 2>),
}

/// The input pixel each entry of the patch matrix reads, for [`conv2d_channel_major`]:
/// for every kernel offset `(i, j)`, image and output position (row-major
/// `[k·k, n·H'·W']`), its index in the image-major rows `n·H·W`, or `None` where it falls
/// in the zero padding.
fn patch_positions(
    [n, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    padding: usize,
    [h_out, w_out]: [usize; 2],
) -> Vec<Option<usize>> {
    let mut positions = Vec::with_capacity(kernel * kernel * n * h_out * w_out);
    for i in 0..kernel {
        for j in 0..kernel {
            for image in 0..n {
                for y in 0..h_out {
                    let row = (y * stride + i).checked_sub(padding).filter(|&r| r < h);
                    for x in 0..w_out {
                        let col = (x * stride + j).checked_sub(padding).filter(|&c| c < w);
                        positions.push(row.zip(col).map(|(r, c)| (image * h + r) * w + c));
                    }
                }
            }
        }
    }
    positions
}

/// A 2-D convolution of channel-major images, `x [C, n, H, W] -> [O, n, H', W']`: a
/// gather of the patches (`select`, whose backward is `select_add`, whose backward is
/// `select` again), zeros where the kernel reads the padding (a constant 0/1 mask), and
/// one matrix product `[O, C·k·k] x [C·k·k, n·H'·W']`.
///
/// Burn's `conv2d` can be differentiated twice too, but its backward ops hand swapped
/// (non-contiguous) views to the backend, which Flex copies and adds element by element;
/// here every tensor of both backward levels is contiguous and the work is matrix
/// products (docs/benchmarks.md, "omniglot-conv"). The padding is a mask rather than a
/// column of zeros joined with `cat`: that form gave wrong gradients now and then when two
/// threads ran backward passes at once (Burn 0.21's autodiff graphs are process-global).
fn conv2d_channel_major<B: Backend>(x: Tensor<B, 4>, conv: &Conv2dLayer<B>) -> Tensor<B, 4> {
    let [c, n, h, w] = x.dims();
    let [o, _, k, _] = conv.weight.dims();
    let (s, p) = (conv.stride, conv.padding);
    let out = [(h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1];
    let device = x.device();
    let positions = patch_positions([n, h, w], k, s, p, out);
    let count = positions.len();
    // Dtypes spelled out: a tensor made without one takes the device's default, which
    // another backend type on the same device (f32 and f64 ndarray) may have fixed.
    let indices: Vec<i64> = positions.iter().map(|i| i.unwrap_or(0) as i64).collect();
    let int_dtype = <B::IntElem as burn::tensor::Element>::dtype();
    let indices =
        Tensor::<B, 1, Int>::from_data(TensorData::new(indices, [count]), (&device, int_dtype));
    let rows: Tensor<B, 2> = x.reshape([c, n * h * w]);
    let patches = rows.select(1, indices);
    let patches = if positions.iter().all(Option::is_some) {
        patches
    } else {
        let mask: Vec<f64> = positions
            .iter()
            .map(|i| if i.is_some() { 1.0 } else { 0.0 })
            .collect();
        let dtype = patches.dtype();
        patches * Tensor::<B, 2>::from_data(TensorData::new(mask, [1, count]), (&device, dtype))
    };
    let patches = patches.reshape([c * k * k, n * out[0] * out[1]]);
    let y =
        conv.weight.val().reshape([o, c * k * k]).matmul(patches) + conv.bias.val().reshape([o, 1]);
    y.reshape([o, n, out[0], out[1]])
}

/// Batch norm on the batch's own statistics, scaled by `gamma [C]` and shifted by
/// `beta [C]`.
fn batch_norm<B: Backend>(
    h: Activations<B>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
) -> Activations<B> {
    match h {
        Activations::Images(x) => {
            // Rows `[C, n·H·W]`: every statistic is one number per row, a broadcast that
            // Flex runs on its SIMD path, forward and in both backward levels.
            let [c, n, h, w] = x.dims();
            let rows: Tensor<B, 2> = x.reshape([c, n * h * w]);
            let mean = rows.clone().mean_dim(1);
            let centred = rows - mean;
            let var = (centred.clone() * centred.clone()).mean_dim(1);
            let normed = centred / var.add_scalar(BATCH_NORM_EPS).sqrt();
            let out = normed * gamma.reshape([c, 1]) + beta.reshape([c, 1]);
            Activations::Images(out.reshape([c, n, h, w]))
        }
        Activations::Vectors(x) => {
            let [_, f] = x.dims();
            let mean = x.clone().mean_dim(0);
            let centred = x - mean;
            let var = (centred.clone() * centred.clone()).mean_dim(0);
            let normed = centred / var.add_scalar(BATCH_NORM_EPS).sqrt();
            Activations::Vectors(normed * gamma.reshape([1, f]) + beta.reshape([1, f]))
        }
    }
}

impl<B: Backend> Layer<B> {
    /// The layer on `h`, for the network run with the fast weights after `step` inner
    /// steps.
    fn forward(&self, h: Activations<B>, step: usize) -> Activations<B> {
        use Activations::{Images, Vectors};
        match (self, h) {
            (Layer::Conv2d(conv), Images(x)) => Images(conv2d_channel_major(x, conv)),
            (Layer::BatchNorm(bn), h) => batch_norm(h, bn.weight.val(), bn.bias.val()),
            (Layer::StepBatchNorm(bn), h) => {
                let [sets, c] = bn.weight.dims();
                let s = step.min(sets - 1);
                let set = |p: &Param<Tensor<B, 2>>| p.val().slice([s..s + 1, 0..c]).reshape([c]);
                batch_norm(h, set(&bn.weight), set(&bn.bias))
            }
            (Layer::Relu(_), Images(x)) => Images(activation::relu(x)),
            (Layer::Relu(_), Vectors(x)) => Vectors(activation::relu(x)),
            (Layer::Tanh(_), Images(x)) => Images(activation::tanh(x)),
            (Layer::Tanh(_), Vectors(x)) => Vectors(activation::tanh(x)),
            (Layer::MaxPool2d(p), Images(x)) => {
                let [c, n, h, w] = x.dims();
                let k = p.kernel;
                let (h2, w2) = (h / k, w / k);
                // Rows, then columns: each a split of one axis and a `max_dim`. The
                // leftover rows and columns are sliced off first and the slice copied
                // (an elementwise op) before the split: reshaping a sliced view gave
                // wrong values on wgpu (cubecl 0.10, lavapipe).
                let x = if h2 * k == h {
                    x
                } else {
                    x.slice([0..c, 0..n, 0..h2 * k, 0..w]).mul_scalar(1.0)
                };
                let rows: Tensor<B, 5> = x.reshape([c, n, h2, k, w]);
                let x: Tensor<B, 4> = rows.max_dim(3).reshape([c, n, h2, w]);
                let x = if w2 * k == w {
                    x
                } else {
                    x.slice([0..c, 0..n, 0..h2, 0..w2 * k]).mul_scalar(1.0)
                };
                let cols: Tensor<B, 5> = x.reshape([c, n, h2, w2, k]);
                Images(cols.max_dim(4).reshape([c, n, h2, w2]))
            }
            (Layer::MeanSpatial(_), Images(x)) => {
                let [c, n, h, w] = x.dims();
                let positions: Tensor<B, 3> = x.reshape([c, n, h * w]);
                Vectors(positions.mean_dim(2).reshape([c, n]).transpose())
            }
            (Layer::Flatten(_), Images(x)) => {
                let [c, n, h, w] = x.dims();
                Vectors(x.swap_dims(0, 1).reshape([n, c * h * w]))
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
                LayerSpec::BatchNorm {
                    weight,
                    bias,
                    per_step: false,
                } => Layer::BatchNorm(BatchNormLayer {
                    weight: tensor(weight, device),
                    bias: tensor(bias, device),
                }),
                LayerSpec::BatchNorm {
                    weight,
                    bias,
                    per_step: true,
                } => Layer::StepBatchNorm(StepBatchNormLayer {
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
                    Layer::StepBatchNorm(b) => pair(array(&b.weight), array(&b.bias)),
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
                    per_step: false,
                },
                Layer::StepBatchNorm(b) => LayerSpec::BatchNorm {
                    weight: array(&b.weight),
                    bias: array(&b.bias),
                    per_step: true,
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

    /// Predictions for `n` flattened examples of one task, `x [n, C·H·W] -> [n, out]`
    /// (per-step batch norm: the last set).
    pub fn forward_task(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward_task_at(x, usize::MAX)
    }

    /// The parameters of per-step batch norms, by index in visit order (meta-parameters
    /// that the inner loop never adapts).
    pub fn per_step_params(&self) -> Vec<usize> {
        let mut index = 0;
        let mut fixed = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::StepBatchNorm(_) => {
                    fixed.extend([index, index + 1]);
                    index += 2;
                }
                Layer::Conv2d(_) | Layer::BatchNorm(_) | Layer::Linear(_) => index += 2,
                _ => {}
            }
        }
        fixed
    }

    /// [`Self::forward_task`] for the network run with the fast weights after `step`
    /// inner steps (per-step batch norm: set `min(step, S − 1)`).
    pub fn forward_task_at(&self, x: Tensor<B, 2>, step: usize) -> Tensor<B, 2> {
        let [n, _] = x.dims();
        let start = match self.input[..] {
            [c, h, w] => {
                let images: Tensor<B, 3> = x.reshape([n, c, h * w]);
                Activations::Images(images.swap_dims(0, 1).reshape([c, n, h, w]))
            }
            _ => Activations::Vectors(x),
        };
        match self
            .layers
            .iter()
            .fold(start, |h, layer| layer.forward(h, step))
        {
            Activations::Vectors(y) => y,
            Activations::Images(_) => {
                unreachable!("LayeredSpec::validate checks that the model ends in vectors")
            }
        }
    }
}
