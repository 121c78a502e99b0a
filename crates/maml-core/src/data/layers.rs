//! Layered models as files: the layer list of version-3 problems and of checkpoints
//! (`docs/problem-schema.md`, "Version 3"), with every array as nested JSON lists, and the
//! shapes a layer list implies.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{MamlError, Result};

/// A dense array of any rank read from (and written as) nested JSON lists: `[[1, 2], [3,
/// 4]]` is shape `[2, 2]`, values in row-major order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// The size of each axis, outermost first (`[]` for a number).
    pub shape: Vec<usize>,
    /// The entries in row-major order.
    pub values: Vec<f64>,
}

impl Array {
    /// An array of the given shape and row-major values.
    ///
    /// # Panics
    /// If `values.len()` is not the product of `shape` (a broken invariant of the caller).
    pub fn new(shape: Vec<usize>, values: Vec<f64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "an array's values fill its shape"
        );
        Self { shape, values }
    }

    /// An array of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::new(shape.to_vec(), vec![0.0; shape.iter().product()])
    }

    /// Largest absolute entry (0 for an empty array).
    pub fn max_abs(&self) -> f64 {
        self.values.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    /// Largest absolute entry of `self - other` (infinite when the shapes differ).
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        if self.shape != other.shape {
            return f64::INFINITY;
        }
        self.values
            .iter()
            .zip(&other.values)
            .fold(0.0, |m, (a, b)| m.max((a - b).abs()))
    }

    /// Checks the shape and that every entry is finite.
    pub fn check(&self, shape: &[usize], location: &str) -> Result<()> {
        if self.shape != shape {
            return Err(MamlError::Shape {
                location: location.into(),
                detail: format!("shape {:?}, expected {shape:?}", self.shape),
            });
        }
        match self.values.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(MamlError::NonFinite {
                value: self.values[i],
                location: format!("{location} (entry {i})"),
            }),
            None => Ok(()),
        }
    }

    fn from_value(value: &serde_json::Value) -> std::result::Result<Self, String> {
        match value {
            serde_json::Value::Number(n) => {
                Ok(Self::new(vec![], vec![n.as_f64().unwrap_or(f64::NAN)]))
            }
            serde_json::Value::Array(items) => {
                let mut shape = None;
                let mut values = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let child = Self::from_value(item).map_err(|e| format!("[{i}]{e}"))?;
                    match &shape {
                        None => shape = Some(child.shape),
                        Some(s) if *s != child.shape => {
                            return Err(format!(
                                "[{i}]: a ragged array (shape {:?} after {s:?})",
                                child.shape
                            ));
                        }
                        Some(_) => {}
                    }
                    values.extend(child.values);
                }
                let mut full = vec![items.len()];
                full.extend(shape.unwrap_or_default());
                Ok(Self {
                    shape: full,
                    values,
                })
            }
            other => Err(format!(": {other} is not a number or a list")),
        }
    }

    fn to_value(&self, axis: usize, offset: usize) -> serde_json::Value {
        if axis == self.shape.len() {
            return serde_json::Value::from(self.values[offset]);
        }
        let stride: usize = self.shape[axis + 1..].iter().product();
        serde_json::Value::Array(
            (0..self.shape[axis])
                .map(|i| self.to_value(axis + 1, offset + i * stride))
                .collect(),
        )
    }
}

impl Serialize for Array {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value(0, 0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Array {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(|e| serde::de::Error::custom(format!("array{e}")))
    }
}

/// One layer of a layered model, applied in order to `[n, C, H, W]` images or `[n, F]`
/// vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `[n, C, H, W] -> [n, O, H', W']`, zero padding on every side, square kernel.
    Conv2d {
        /// `[O, C, k, k]`.
        weight: Array,
        /// `[O]`.
        bias: Array,
        /// The step of the kernel, both axes.
        stride: usize,
        /// Zeros added on every side.
        padding: usize,
    },
    /// Normalises each channel (or feature) with the batch's mean and biased variance
    /// (ε = 1e-5), then scales by `weight` and shifts by `bias` (γ, β, `[C]`).
    BatchNorm {
        /// γ, `[C]`; `[S, C]` per step.
        weight: Array,
        /// β, `[C]`; `[S, C]` per step.
        bias: Array,
        /// MAML++'s per-step batch norm: one set of γ and β per inner step and one for
        /// the fast weights after the last (`S = K + 1` sets), meta-parameters that the
        /// inner loop does not adapt; the network run with `θ_k` uses set `min(k, S − 1)`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_step: bool,
    },
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `k x k` maximum with stride `k`; rows and columns left over are dropped.
    MaxPool2d {
        /// The window size and stride.
        kernel: usize,
    },
    /// `[n, C, H, W] -> [n, C]`, the mean over positions.
    MeanSpatial,
    /// `[n, C, H, W] -> [n, C·H·W]`, channel-major.
    Flatten,
    /// `[n, F] -> [n, O]`, `x Wᵀ + b`.
    Linear {
        /// `[O, F]`.
        weight: Array,
        /// `[O]`.
        bias: Array,
    },
}

/// The shape of one example between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleShape {
    /// `[C, H, W]`.
    Image([usize; 3]),
    /// `[F]`.
    Vector(usize),
}

impl ExampleShape {
    /// Number of numbers in one example.
    pub fn len(self) -> usize {
        match self {
            Self::Image([c, h, w]) => c * h * w,
            Self::Vector(f) => f,
        }
    }

    /// Whether an example holds no numbers.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The parameters of one layer (`{}` for a layer without any).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerWeights {
    /// The weight (conv2d `[O, C, k, k]`, linear `[O, F]`, batch norm γ `[C]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Array>,
    /// The bias (`[O]`; batch norm β `[C]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<Array>,
}

/// One [`LayerWeights`] per layer: a meta-gradient, fast weights or Meta-SGD's step sizes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayeredWeights {
    /// Input layer first.
    pub layers: Vec<LayerWeights>,
}

impl LayeredWeights {
    /// Every array in visit order (weight before bias, layer by layer).
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.layers
            .iter()
            .flat_map(|l| l.weight.iter().chain(l.bias.iter()))
    }

    /// Every array in visit order, mutable.
    pub fn arrays_mut(&mut self) -> impl Iterator<Item = &mut Array> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.weight.iter_mut().chain(l.bias.iter_mut()))
    }

    /// Largest absolute entry.
    pub fn max_abs(&self) -> f64 {
        self.arrays().fold(0.0, |m, a| m.max(a.max_abs()))
    }

    /// Largest absolute entry of the difference, array by array in visit order (layers
    /// without parameters do not count, so a layer list without `{}` entries compares
    /// with one that has them); infinite when the arrays differ in number or shape.
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        let (mine, theirs): (Vec<&Array>, Vec<&Array>) =
            (self.arrays().collect(), other.arrays().collect());
        if mine.len() != theirs.len() {
            return f64::INFINITY;
        }
        mine.iter()
            .zip(&theirs)
            .fold(0.0, |m, (a, b)| m.max(a.max_abs_diff(b)))
    }

    /// The layers that have parameters, in order (a version-2 file's layout of an MLP's
    /// layer list, which has no `{}` for its activations).
    pub fn parameters_only(&self) -> Self {
        Self {
            layers: self
                .layers
                .iter()
                .filter(|l| l.weight.is_some() || l.bias.is_some())
                .cloned()
                .collect(),
        }
    }

    /// Checks that `self` has the layout of `like` (same arrays, same shapes), finite.
    pub fn check_like(&self, like: &Self, location: &str) -> Result<()> {
        if self.layers.len() != like.layers.len() {
            return Err(MamlError::Shape {
                location: format!("{location}.layers"),
                detail: format!(
                    "{} layers, the model has {}",
                    self.layers.len(),
                    like.layers.len()
                ),
            });
        }
        for (l, (a, b)) in self.layers.iter().zip(&like.layers).enumerate() {
            for (name, mine, theirs) in
                [("weight", &a.weight, &b.weight), ("bias", &a.bias, &b.bias)]
            {
                let at = format!("{location}.layers[{l}].{name}");
                match (mine, theirs) {
                    (Some(m), Some(t)) => m.check(&t.shape, &at)?,
                    (None, None) => {}
                    (Some(_), None) => {
                        return Err(MamlError::Shape {
                            location: at,
                            detail: "this layer has no such parameter".into(),
                        });
                    }
                    (None, Some(t)) => {
                        return Err(MamlError::Shape {
                            location: at,
                            detail: format!("missing, expected shape {:?}", t.shape),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// A layered model: the shape of one input example and the layers, with their weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayeredSpec {
    /// `[C, H, W]` for images, `[F]` for vectors.
    pub input: Vec<usize>,
    /// The layers, applied in order.
    pub layers: Vec<LayerSpec>,
}

impl LayeredSpec {
    /// The shape of one input example.
    pub fn input_shape(&self) -> Result<ExampleShape> {
        let shape = match self.input[..] {
            [c, h, w] => ExampleShape::Image([c, h, w]),
            [f] => ExampleShape::Vector(f),
            _ => {
                return Err(MamlError::Shape {
                    location: "model.input".into(),
                    detail: format!("{:?}: expected [C, H, W] or [F]", self.input),
                });
            }
        };
        if shape.is_empty() {
            return Err(MamlError::Shape {
                location: "model.input".into(),
                detail: format!("{:?} holds no numbers", self.input),
            });
        }
        Ok(shape)
    }

    /// Checks every layer's shapes and weights and returns the output width.
    pub fn validate(&self) -> Result<usize> {
        let mut shape = self.input_shape()?;
        for (l, layer) in self.layers.iter().enumerate() {
            shape = layer_output(layer, shape, &format!("model.layers[{l}]"))?;
        }
        match shape {
            ExampleShape::Vector(out) => Ok(out),
            ExampleShape::Image(s) => Err(MamlError::Shape {
                location: "model.layers".into(),
                detail: format!(
                    "the last layer gives images {s:?}; end with mean_spatial or flatten and \
                     a linear layer"
                ),
            }),
        }
    }

    /// The input width of the flattened examples (`C·H·W` or `F`).
    pub fn d_in(&self) -> Result<usize> {
        Ok(self.input_shape()?.len())
    }

    /// The parameters of every layer.
    pub fn weights(&self) -> LayeredWeights {
        LayeredWeights {
            layers: self
                .layers
                .iter()
                .map(|layer| match layer {
                    LayerSpec::Conv2d { weight, bias, .. }
                    | LayerSpec::BatchNorm { weight, bias, .. }
                    | LayerSpec::Linear { weight, bias } => LayerWeights {
                        weight: Some(weight.clone()),
                        bias: Some(bias.clone()),
                    },
                    _ => LayerWeights::default(),
                })
                .collect(),
        }
    }

    /// The same layers with the parameters of `weights` (of [`Self::weights`]'s layout).
    pub fn with_weights(&self, weights: &LayeredWeights) -> Self {
        let mut spec = self.clone();
        for (layer, w) in spec.layers.iter_mut().zip(&weights.layers) {
            if let (
                LayerSpec::Conv2d { weight, bias, .. }
                | LayerSpec::BatchNorm { weight, bias, .. }
                | LayerSpec::Linear { weight, bias },
                Some(new_w),
                Some(new_b),
            ) = (layer, &w.weight, &w.bias)
            {
                *weight = new_w.clone();
                *bias = new_b.clone();
            }
        }
        spec
    }
}

fn layer_output(layer: &LayerSpec, shape: ExampleShape, at: &str) -> Result<ExampleShape> {
    let wrong = |what: &str| {
        Err(MamlError::Shape {
            location: at.into(),
            detail: format!("{what} (its input is {shape:?})"),
        })
    };
    match (layer, shape) {
        (
            LayerSpec::Conv2d {
                weight,
                bias,
                stride,
                padding,
            },
            ExampleShape::Image([c, h, w]),
        ) => {
            let [o, k] = match weight.shape[..] {
                [o, _, k, _] => [o, k],
                _ => {
                    return wrong(&format!(
                        "conv2d weight of shape {:?}, expected [O, C, k, k]",
                        weight.shape
                    ));
                }
            };
            weight.check(&[o, c, k, k], &format!("{at}.weight"))?;
            bias.check(&[o], &format!("{at}.bias"))?;
            if *stride == 0 || k == 0 {
                return wrong(&format!(
                    "conv2d stride {stride} and kernel {k} must be at least 1"
                ));
            }
            if h + 2 * padding < k || w + 2 * padding < k {
                return wrong(&format!(
                    "a {k}x{k} kernel does not fit with padding {padding}"
                ));
            }
            let out = |n: usize| (n + 2 * padding - k) / stride + 1;
            Ok(ExampleShape::Image([o, out(h), out(w)]))
        }
        (
            LayerSpec::BatchNorm {
                weight,
                bias,
                per_step,
            },
            s,
        ) => {
            let c = match s {
                ExampleShape::Image([c, _, _]) => c,
                ExampleShape::Vector(f) => f,
            };
            let shape = if *per_step {
                let sets = weight.shape.first().copied().unwrap_or(0);
                if sets == 0 {
                    return wrong("a per-step batch norm needs at least one set of weights");
                }
                vec![sets, c]
            } else {
                vec![c]
            };
            weight.check(&shape, &format!("{at}.weight"))?;
            bias.check(&shape, &format!("{at}.bias"))?;
            Ok(s)
        }
        (LayerSpec::Relu | LayerSpec::Tanh, s) => Ok(s),
        (LayerSpec::MaxPool2d { kernel }, ExampleShape::Image([c, h, w])) => {
            if *kernel == 0 || h < *kernel || w < *kernel {
                return wrong(&format!(
                    "max_pool2d kernel {kernel} must be in 1..=min(H, W)"
                ));
            }
            Ok(ExampleShape::Image([c, h / kernel, w / kernel]))
        }
        (LayerSpec::MeanSpatial, ExampleShape::Image([c, _, _])) => Ok(ExampleShape::Vector(c)),
        (LayerSpec::Flatten, ExampleShape::Image(s)) => {
            Ok(ExampleShape::Vector(ExampleShape::Image(s).len()))
        }
        (LayerSpec::Linear { weight, bias }, ExampleShape::Vector(f)) => {
            let o = weight.shape.first().copied().unwrap_or(0);
            weight.check(&[o, f], &format!("{at}.weight"))?;
            bias.check(&[o], &format!("{at}.bias"))?;
            if o == 0 {
                return wrong("a linear layer needs at least one output");
            }
            Ok(ExampleShape::Vector(o))
        }
        (LayerSpec::Linear { .. }, ExampleShape::Image(_)) => {
            wrong("linear takes vectors: put flatten or mean_spatial before it")
        }
        (_, ExampleShape::Vector(_)) => wrong("this layer takes images [C, H, W]"),
    }
}
