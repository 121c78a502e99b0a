//! The built-in architectures a training run names: an MLP, or one of the MAML paper's
//! two conv nets (Finn et al. 2017, section 5.2) as a layer list.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use crate::data::layers::{Array, LayerSpec, LayeredSpec};
// Not `Result`: the `Config` derive names `Result` unqualified.
use crate::error::MamlError;
use crate::model::mlp::MlpConfig;

/// One of the MAML paper's conv nets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvNet {
    /// Omniglot's: 4 blocks of 3x3 conv (stride 2, padding 1), batch norm, ReLU; the
    /// spatial mean; a linear head. 64 filters by default.
    Conv4,
    /// MiniImageNet's: 4 blocks of 3x3 conv (stride 1, padding 1), batch norm, ReLU, 2x2
    /// max pool; flatten; a linear head. 32 filters by default.
    Conv4Pool,
}

impl ConvNet {
    /// The paper's width.
    pub fn default_filters(self) -> usize {
        match self {
            Self::Conv4 => 64,
            Self::Conv4Pool => 32,
        }
    }
}

impl fmt::Display for ConvNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conv4 => "conv4",
            Self::Conv4Pool => "conv4-pool",
        })
    }
}

impl FromStr for ConvNet {
    type Err = MamlError;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "conv4" => Ok(Self::Conv4),
            "conv4-pool" => Ok(Self::Conv4Pool),
            _ => Err(MamlError::UnknownName {
                kind: "conv net",
                value: s.into(),
                expected: "conv4, conv4-pool",
            }),
        }
    }
}

/// A conv net of the paper, at a chosen width.
#[derive(Config, Debug, PartialEq)]
pub struct ConvNetConfig {
    /// Which network.
    pub net: ConvNet,
    /// Filters of every conv layer (`None`: the paper's, [`ConvNet::default_filters`]).
    pub filters: Option<usize>,
    /// MAML++'s per-step batch norm: this many sets of γ and β in every batch norm
    /// (`K + 1` for `K` inner steps); `None`: one set, adapted like the other weights.
    pub per_step_bn: Option<usize>,
}

impl ConvNetConfig {
    /// The width of every conv layer.
    pub fn width(&self) -> usize {
        self.filters.unwrap_or(self.net.default_filters())
    }

    /// The layer list for images `input = [C, H, W]` and `d_out` classes, with the
    /// peers' initialisation drawn with `seed`: conv weights `N(0, 2 / (C·9))` (He),
    /// biases and β zero, γ one, the head `U(±1/√F)`.
    pub fn spec(
        &self,
        input: [usize; 3],
        d_out: usize,
        seed: u64,
    ) -> crate::error::Result<LayeredSpec> {
        let filters = self.width();
        if filters == 0 {
            return Err(MamlError::InvalidHyperparameter {
                name: "filters",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if self.per_step_bn == Some(0) {
            return Err(MamlError::InvalidHyperparameter {
                name: "per_step_bn",
                value: "0".into(),
                reason: "a per-step batch norm needs at least one set (inner_steps + 1)",
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let (stride, pool) = match self.net {
            ConvNet::Conv4 => (2, false),
            ConvNet::Conv4Pool => (1, true),
        };
        let mut layers = Vec::new();
        let mut channels = input[0];
        for _ in 0..4 {
            let std = (2.0 / (channels * 9) as f64).sqrt();
            let normal = Normal::new(0.0, std).expect("a positive standard deviation");
            let weight = (0..filters * channels * 9)
                .map(|_| normal.sample(&mut rng))
                .collect();
            layers.push(LayerSpec::Conv2d {
                weight: Array::new(vec![filters, channels, 3, 3], weight),
                bias: Array::zeros(&[filters]),
                stride,
                padding: 1,
            });
            let (shape, per_step) = match self.per_step_bn {
                Some(sets) => (vec![sets, filters], true),
                None => (vec![filters], false),
            };
            let n = shape.iter().product();
            layers.push(LayerSpec::BatchNorm {
                weight: Array::new(shape.clone(), vec![1.0; n]),
                bias: Array::zeros(&shape),
                per_step,
            });
            layers.push(LayerSpec::Relu);
            if pool {
                layers.push(LayerSpec::MaxPool2d { kernel: 2 });
            }
            channels = filters;
        }
        let mut spec = LayeredSpec {
            input: input.to_vec(),
            layers,
        };
        spec.layers.push(if pool {
            LayerSpec::Flatten
        } else {
            LayerSpec::MeanSpatial
        });
        // Stride-2 convs map H to ceil(H / 2) and are followed by the spatial mean;
        // 2x2 pools map H to floor(H / 2) four times and are flattened.
        let features = if pool {
            filters * (input[1] / 16) * (input[2] / 16)
        } else {
            filters
        };
        if features == 0 {
            return Err(MamlError::Shape {
                location: "model".into(),
                detail: format!("{} needs images of at least 16x16, got {input:?}", self.net),
            });
        }
        let bound = 1.0 / (features as f64).sqrt();
        let uniform = Uniform::new_inclusive(-bound, bound).expect("a finite, ordered range");
        let head = (0..d_out * features)
            .map(|_| uniform.sample(&mut rng))
            .collect();
        spec.layers.push(LayerSpec::Linear {
            weight: Array::new(vec![d_out, features], head),
            bias: Array::zeros(&[d_out]),
        });
        spec.validate()?;
        Ok(spec)
    }
}

/// The architecture of a run on the model-agnostic core: an MLP (no hidden layer: the
/// linear model) or a conv net. In files, a conv net is `{"net": "conv4", ...}` and an
/// MLP `{"hidden": [...], "activation": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelConfig {
    /// A conv net (its `net` field tells it apart; listed first so that it is tried
    /// first).
    Conv(ConvNetConfig),
    /// An MLP.
    Mlp(MlpConfig),
}

impl From<MlpConfig> for ModelConfig {
    fn from(config: MlpConfig) -> Self {
        Self::Mlp(config)
    }
}

impl From<ConvNetConfig> for ModelConfig {
    fn from(config: ConvNetConfig) -> Self {
        Self::Conv(config)
    }
}
