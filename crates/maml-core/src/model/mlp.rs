//! Built-in models, task-batched: every parameter has a leading task axis (size 1 in the
//! initial weights, `tasks` in fast weights), so a whole meta-batch runs through one set
//! of batched tensor operations. Layers are `matmul` + `add` (twice differentiable).

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::LinearWeights;
use crate::data::layers::{LayerSpec, LayerWeights, LayeredSpec, LayeredWeights};
use crate::error::MamlError;

/// The activation after every layer but the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// Applies the activation.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Relu => burn::tensor::activation::relu(x),
            Activation::Tanh => burn::tensor::activation::tanh(x),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = MamlError;
    fn from_str(s: &str) -> Result<Self, MamlError> {
        match s {
            "relu" => Ok(Self::Relu),
            "tanh" => Ok(Self::Tanh),
            _ => Err(MamlError::UnknownName {
                kind: "activation",
                value: s.into(),
                expected: "relu tanh",
            }),
        }
    }
}

impl TryFrom<String> for Activation {
    type Error = MamlError;
    fn try_from(s: String) -> Result<Self, MamlError> {
        s.parse()
    }
}

/// A linear layer with per-task weights: `x [tasks, n, in] -> x W^T + b`.
#[derive(Module, Debug)]
pub struct TaskLinear<B: Backend> {
    /// `W^T`, `[tasks | 1, in, out]`.
    pub weight: Param<Tensor<B, 3>>,
    /// `b`, `[tasks | 1, 1, out]`.
    pub bias: Param<Tensor<B, 3>>,
}

impl<B: Backend> TaskLinear<B> {
    /// A layer holding host weights (`weight [out][in]`, `bias [out]`), task axis 1.
    pub fn from_weights(weights: &LinearWeights, device: &B::Device) -> Self {
        let (d_out, d_in) = (weights.d_out(), weights.d_in());
        let mut w_t = vec![0.0; d_in * d_out];
        for (o, row) in weights.weight.iter().enumerate() {
            for (i, w) in row.iter().enumerate() {
                w_t[i * d_out + o] = *w;
            }
        }
        let weight = Tensor::from_data(TensorData::new(w_t, [1, d_in, d_out]), device);
        let bias = Tensor::from_data(TensorData::new(weights.bias.clone(), [1, 1, d_out]), device);
        Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        }
    }

    /// Host weights of task `task`.
    pub fn to_weights(&self, task: usize) -> LinearWeights {
        let [tasks, d_in, d_out] = self.weight.dims();
        let task = if tasks == 1 { 0 } else { task };
        let w: Vec<f64> = self.weight.val().into_data().iter::<f64>().collect();
        let b: Vec<f64> = self.bias.val().into_data().iter::<f64>().collect();
        let base = task * d_in * d_out;
        LinearWeights {
            weight: (0..d_out)
                .map(|o| (0..d_in).map(|i| w[base + i * d_out + o]).collect())
                .collect(),
            bias: b[task * d_out..(task + 1) * d_out].to_vec(),
        }
    }

    /// `[tasks, n, in] -> [tasks, n, out]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        add_task_bias(x.matmul(self.weight.val()), self.bias.val())
    }
}

/// `y [tasks, n, out] + b [tasks | 1, 1, out]`, the bias of a task-batched layer (also
/// in the MLP's hand-derived passes, [`crate::algo::analytic`]).
pub(crate) fn add_task_bias<B: Backend>(y: Tensor<B, 3>, bias: Tensor<B, 3>) -> Tensor<B, 3> {
    let [tasks, n, _] = y.dims();
    // A per-task bias `[tasks, 1, out]` broadcast over `n` rows is a strided element-wise
    // add on Flex 0.21, which walks a general strided index element by element for any
    // broadcast but one row shared by all (a fifth of a second-order sinusoid meta step,
    // docs/benchmarks.md). Repeated to `[tasks, n, out]` (a copy of rows), the add is
    // contiguous; the values are the same and the backward pass is the same sum over
    // rows.
    if tasks > 1 && n > 1 && bias.dims()[0] == tasks {
        y + bias.repeat_dim(1, n)
    } else {
        y + bias
    }
}

/// Host weights of a multi-layer perceptron, in the problem files' version-2 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpWeights {
    /// The layers, input first.
    pub layers: Vec<LinearWeights>,
}

impl MlpWeights {
    /// Kaiming-normal weights (std = sqrt(2 / in)) and zero biases for layer sizes
    /// `sizes = [in, hidden.., out]`, drawn from `seed`.
    pub fn kaiming(sizes: &[usize], seed: u64) -> Self {
        Self {
            layers: sizes
                .windows(2)
                .enumerate()
                .map(|(l, w)| LinearWeights::kaiming(w[0], w[1], seed.wrapping_add(l as u64)))
                .collect(),
        }
    }

    /// PyTorch's `nn.Linear` default: weight and bias `~ U(-1/sqrt(in), 1/sqrt(in))`, as
    /// learn2learn's sinusoid example and the JAX peer use; for layer sizes
    /// `[in, hidden.., out]`, drawn from `seed`.
    pub fn uniform_fan_in(sizes: &[usize], seed: u64) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Self {
            layers: sizes
                .windows(2)
                .map(|w| {
                    let bound = 1.0 / (w[0] as f64).sqrt();
                    let mut draw = || rng.random_range(-bound..=bound);
                    LinearWeights {
                        weight: (0..w[1])
                            .map(|_| (0..w[0]).map(|_| draw()).collect())
                            .collect(),
                        bias: (0..w[1]).map(|_| draw()).collect(),
                    }
                })
                .collect(),
        }
    }

    /// `[in, hidden.., out]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.d_in()];
        sizes.extend(self.layers.iter().map(LinearWeights::d_out));
        sizes
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.layers.first().map_or(0, LinearWeights::d_in)
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.layers.last().map_or(0, LinearWeights::d_out)
    }

    /// Checks that there is a layer, each layer is valid and consecutive layers fit.
    pub fn validate(&self, location: &str) -> Result<(), MamlError> {
        if self.layers.is_empty() {
            return Err(MamlError::Empty {
                location: format!("{location}.layers"),
                detail: "a model needs at least one layer",
            });
        }
        for (l, layer) in self.layers.iter().enumerate() {
            layer.validate(&format!("{location}.layers[{l}]"))?;
            if l > 0 && layer.d_in() != self.layers[l - 1].d_out() {
                return Err(MamlError::Shape {
                    location: format!("{location}.layers[{l}].weight"),
                    detail: format!(
                        "layer takes {} inputs but the layer before has {} outputs",
                        layer.d_in(),
                        self.layers[l - 1].d_out()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks that `other` (e.g. Meta-SGD step sizes) has exactly this shape.
    pub fn check_same_shape(&self, other: &Self, location: &str) -> Result<(), MamlError> {
        if other.sizes() != self.sizes() || other.layers.len() != self.layers.len() {
            return Err(MamlError::Shape {
                location: location.into(),
                detail: format!(
                    "layer sizes {:?} do not match the model's {:?}",
                    other.sizes(),
                    self.sizes()
                ),
            });
        }
        Ok(())
    }

    /// Largest absolute entry.
    pub fn max_abs(&self) -> f64 {
        self.layers
            .iter()
            .map(LinearWeights::max_abs)
            .fold(0.0, f64::max)
    }

    /// Largest absolute entry-wise difference to `other` (same shape).
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        self.layers
            .iter()
            .zip(&other.layers)
            .map(|(a, b)| a.max_abs_diff(b))
            .fold(0.0, f64::max)
    }

    /// The MLP as a layer list on vectors `[in]`: its linear layers with `activation`
    /// between every two (version-1 and version-2 problems in version 3's terms).
    pub fn to_spec(&self, activation: Activation) -> LayeredSpec {
        let act = match activation {
            Activation::Relu => LayerSpec::Relu,
            Activation::Tanh => LayerSpec::Tanh,
        };
        let mut layers = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 {
                layers.push(act.clone());
            }
            let w = layer.to_layer();
            layers.push(LayerSpec::Linear {
                weight: w.weight.expect("to_layer gives a weight"),
                bias: w.bias.expect("to_layer gives a bias"),
            });
        }
        LayeredSpec {
            input: vec![self.d_in()],
            layers,
        }
    }

    /// The weights in the layout of [`Self::to_spec`]'s layer list (`{}` for every
    /// activation).
    pub fn to_layered(&self) -> LayeredWeights {
        let mut layers = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 {
                layers.push(LayerWeights::default());
            }
            layers.push(layer.to_layer());
        }
        LayeredWeights { layers }
    }

    /// The MLP a (validated) layer list describes, if it is one: vectors in, linear
    /// layers with the same activation (ReLU or tanh) between every two.
    pub fn from_spec(spec: &LayeredSpec) -> Option<(Self, Activation)> {
        if spec.input.len() != 1 || spec.layers.len().is_multiple_of(2) {
            return None;
        }
        let mut layers = Vec::new();
        let mut activation = None;
        for (i, layer) in spec.layers.iter().enumerate() {
            let act = match (i % 2, layer) {
                (0, LayerSpec::Linear { weight, bias }) => {
                    layers.push(LinearWeights::from_layer(&LayerWeights {
                        weight: Some(weight.clone()),
                        bias: Some(bias.clone()),
                    })?);
                    continue;
                }
                (1, LayerSpec::Relu) => Activation::Relu,
                (1, LayerSpec::Tanh) => Activation::Tanh,
                _ => return None,
            };
            if activation.is_some_and(|a| a != act) {
                return None;
            }
            activation = Some(act);
        }
        Some((Self { layers }, activation.unwrap_or_default()))
    }

    /// MLP weights read from the parameters of a layer list in [`Self::to_layered`]'s
    /// layout (layers without parameters skipped), e.g. Meta-SGD's step sizes.
    pub fn from_layered(weights: &LayeredWeights) -> Option<Self> {
        let layers = weights
            .parameters_only()
            .layers
            .iter()
            .map(LinearWeights::from_layer)
            .collect::<Option<Vec<_>>>()?;
        Some(Self { layers })
    }

    /// Every entry, in parameter visit order (layer by layer: `W^T` row-major, then `b`).
    pub fn flatten_visit_order(&self) -> Vec<Vec<f64>> {
        self.layers
            .iter()
            .flat_map(|layer| {
                let (d_out, d_in) = (layer.d_out(), layer.d_in());
                let mut w_t = vec![0.0; d_in * d_out];
                for (o, row) in layer.weight.iter().enumerate() {
                    for (i, w) in row.iter().enumerate() {
                        w_t[i * d_out + o] = *w;
                    }
                }
                [w_t, layer.bias.clone()]
            })
            .collect()
    }
}

/// A multi-layer perceptron `h_{l+1} = act(h_l W_l^T + b_l)`, no activation after the
/// last layer; one layer is the linear model. Task-batched.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// The layers, input first.
    pub layers: Vec<TaskLinear<B>>,
    /// The activation between layers.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// A model holding host weights, on `device`.
    pub fn from_weights(weights: &MlpWeights, activation: Activation, device: &B::Device) -> Self {
        Self {
            layers: weights
                .layers
                .iter()
                .map(|l| TaskLinear::from_weights(l, device))
                .collect(),
            activation,
        }
    }

    /// Host weights of task `task` (any task when the task axis has size 1).
    pub fn to_weights(&self, task: usize) -> MlpWeights {
        MlpWeights {
            layers: self.layers.iter().map(|l| l.to_weights(task)).collect(),
        }
    }

    /// Number of tasks on the task axis.
    pub fn tasks(&self) -> usize {
        self.layers.first().map_or(1, |l| l.weight.dims()[0])
    }
}

/// The built-in model's architecture.
#[derive(Config, Debug, PartialEq)]
pub struct MlpConfig {
    /// Hidden layer widths (empty: the linear model).
    #[config(default = "Vec::new()")]
    pub hidden: Vec<usize>,
    /// The activation between layers.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
}

impl MlpConfig {
    /// Layer sizes `[in, hidden.., out]`.
    pub fn sizes(&self, d_in: usize, d_out: usize) -> Vec<usize> {
        let mut sizes = vec![d_in];
        sizes.extend(&self.hidden);
        sizes.push(d_out);
        sizes
    }

    /// Checks the widths.
    pub fn validate(&self) -> Result<(), MamlError> {
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            return Err(MamlError::InvalidHyperparameter {
                name: "hidden",
                value: format!("{:?} (layer {i})", self.hidden),
                reason: "every hidden width must be at least 1",
            });
        }
        Ok(())
    }
}
