//! The built-in models as files: one enum for the weights a checkpoint holds (an MLP or
//! a layered conv net), the trait that moves them on and off a backend, and the
//! checkpoint format of every model on the model-agnostic core.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::problem::ModelSpec;
use crate::run::TrainConfig;
use maml_core::data::LinearWeights;
use maml_core::data::families::TaskFamily;
use maml_core::data::layers::LayeredSpec;
use maml_core::error::{MamlError, Result};
use maml_core::model::layered::Layered;
use maml_core::model::mlp::{Activation, Mlp, MlpWeights};
use maml_core::model::presets::ModelConfig;
use maml_core::model::{Learnable, MetaBackend, SecondOrder};

/// A built-in model with its weights: `{"mlp": {layers, activation}}` or
/// `{"layered": {input, layers}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredModel {
    /// An MLP (one layer: the linear model), version-2 layout.
    Mlp(ModelSpec),
    /// A layer list (conv nets), version-3 layout.
    Layered(LayeredSpec),
}

/// Which built-in model a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// [`Mlp`].
    Mlp,
    /// [`Layered`].
    Layered,
}

/// Code generic over the built-in model, run by [`ModelKind::dispatch`] with the model
/// type of the kind (the one place where a kind becomes a type).
pub trait ModelJob<B: Backend> {
    /// What the job returns.
    type Output;
    /// Runs with the model type `M`.
    fn run<M: BuiltIn<B>>(self) -> Self::Output;
}

impl ModelKind {
    /// Runs `job` with this kind's model type.
    pub fn dispatch<B: Backend, J: ModelJob<B>>(self, job: J) -> J::Output {
        match self {
            Self::Mlp => job.run::<Mlp<SecondOrder<B>>>(),
            Self::Layered => job.run::<Layered<SecondOrder<B>>>(),
        }
    }
}

impl StoredModel {
    /// The kind.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Mlp(_) => ModelKind::Mlp,
            Self::Layered(_) => ModelKind::Layered,
        }
    }

    /// Checks the weights and returns `(in, out)` of the flattened examples.
    pub fn shape(&self, location: &str) -> Result<(usize, usize)> {
        match self {
            Self::Mlp(spec) => {
                let weights = spec.weights();
                weights.validate(location)?;
                Ok((weights.d_in(), weights.d_out()))
            }
            Self::Layered(spec) => {
                let out = spec.validate()?;
                Ok((spec.d_in()?, out))
            }
        }
    }

    /// Checks that the model fits the tasks of `family` (and its step sizes, if any, the
    /// model).
    pub fn check_fits(
        &self,
        step_sizes: Option<&Self>,
        family: &dyn TaskFamily,
        location: &str,
    ) -> Result<()> {
        let (d_in, d_out) = self.shape(location)?;
        if (d_in, d_out) != (family.d_in(), family.d_out()) {
            return Err(MamlError::ModelShape {
                path: location.into(),
                found_out: d_out,
                found_in: d_in,
                want_out: family.d_out(),
                want_in: family.d_in(),
            });
        }
        match step_sizes {
            Some(sizes) => self.check_step_sizes(sizes, location),
            None => Ok(()),
        }
    }

    /// Checks that Meta-SGD's step sizes `sizes` have this model's layout.
    pub fn check_step_sizes(&self, sizes: &Self, location: &str) -> Result<()> {
        let at = format!("{location}: step sizes");
        match (self, sizes) {
            (Self::Mlp(a), Self::Mlp(b)) => a.weights().check_same_shape(&b.weights(), &at),
            (Self::Layered(a), Self::Layered(b)) => b.weights().check_like(&a.weights(), &at),
            _ => Err(MamlError::Shape {
                location: at,
                detail: "step sizes of another kind of model".into(),
            }),
        }
    }
}

impl StoredModel {
    /// The linear model `weights` as a built-in model: an MLP of one layer.
    pub fn linear(weights: LinearWeights) -> Self {
        Self::Mlp(ModelSpec {
            layers: vec![weights],
            activation: Activation::Relu,
        })
    }

    /// The weights of the linear model, if this is one (an MLP of one layer).
    pub fn as_linear(&self) -> Option<&LinearWeights> {
        match self {
            Self::Mlp(spec) if spec.layers.len() == 1 => spec.layers.first(),
            _ => None,
        }
    }
}

/// What a built-in model's configuration ([`ModelConfig`], from `maml-core`) builds here:
/// its kind and its initial weights as a [`StoredModel`].
pub trait ConfigInit {
    /// The kind of model this configuration builds.
    fn kind(&self) -> ModelKind;
    /// Fresh initial weights for the tasks of `family`, drawn with `seed`: an MLP with
    /// PyTorch's default initialisation, a conv net with the peers'
    /// ([`maml_core::model::presets::ConvNetConfig::spec`]).
    fn init(&self, family: &dyn TaskFamily, seed: u64) -> Result<StoredModel>;
}

impl ConfigInit for ModelConfig {
    fn kind(&self) -> ModelKind {
        match self {
            Self::Mlp(_) => ModelKind::Mlp,
            Self::Conv(_) => ModelKind::Layered,
        }
    }

    fn init(&self, family: &dyn TaskFamily, seed: u64) -> Result<StoredModel> {
        match self {
            Self::Mlp(mlp) => {
                mlp.validate()?;
                let sizes = mlp.sizes(family.d_in(), family.d_out());
                let weights = MlpWeights::uniform_fan_in(&sizes, seed);
                Ok(StoredModel::Mlp(ModelSpec {
                    layers: weights.layers,
                    activation: mlp.activation,
                }))
            }
            Self::Conv(conv) => {
                let input = family
                    .image_shape()
                    .ok_or(MamlError::InvalidHyperparameter {
                        name: "model",
                        value: conv.net.to_string(),
                        reason: "a conv net needs image tasks (--family omniglot)",
                    })?;
                Ok(StoredModel::Layered(conv.spec(
                    input,
                    family.d_out(),
                    seed,
                )?))
            }
        }
    }
}

/// A built-in model type, named at the top of the autodiff stack: how it is built from a
/// [`StoredModel`] and stored back.
pub trait BuiltIn<B: Backend>: Learnable<B> {
    /// The model of `stored`, on `B`; an error if `stored` is of another kind.
    fn from_stored(stored: &StoredModel, device: &B::Device) -> Result<Self::Plain>;
    /// The model's current weights.
    fn to_stored(model: &Self::Meta) -> StoredModel;
}

fn other_kind(stored: &StoredModel) -> MamlError {
    MamlError::Shape {
        location: "model".into(),
        detail: format!(
            "a {:?} model where another kind was expected",
            stored.kind()
        ),
    }
}

impl<B: Backend> BuiltIn<B> for Mlp<SecondOrder<B>> {
    fn from_stored(stored: &StoredModel, device: &B::Device) -> Result<Mlp<B>> {
        let StoredModel::Mlp(spec) = stored else {
            return Err(other_kind(stored));
        };
        Ok(Mlp::from_weights(&spec.weights(), spec.activation, device))
    }

    fn to_stored(model: &Mlp<MetaBackend<B>>) -> StoredModel {
        StoredModel::Mlp(ModelSpec {
            layers: model.to_weights(0).layers,
            activation: model.activation,
        })
    }
}

impl<B: Backend> BuiltIn<B> for Layered<SecondOrder<B>> {
    fn from_stored(stored: &StoredModel, device: &B::Device) -> Result<Layered<B>> {
        let StoredModel::Layered(spec) = stored else {
            return Err(other_kind(stored));
        };
        Layered::from_spec(spec, device)
    }

    fn to_stored(model: &Layered<MetaBackend<B>>) -> StoredModel {
        StoredModel::Layered(model.to_spec())
    }
}

/// What a checkpoint of a run on the model-agnostic core holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCheckpoint {
    /// Always [`ModelCheckpoint::FORMAT`].
    pub format: String,
    /// Meta steps done.
    pub step: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The learned initial weights.
    pub model: StoredModel,
    /// Meta-SGD's learned step sizes (same layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_sizes: Option<StoredModel>,
    /// MAML++'s learned per-step step sizes, `[K][P]`: inner step `k`'s size of the
    /// `p`-th parameter tensor in visit order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_table: Option<Vec<Vec<f64>>>,
}

/// The learned inner step sizes an evaluation adapts with: Meta-SGD's (the model's
/// layout) or MAML++'s per-step table `[K][P]`, or none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes<'a> {
    /// Meta-SGD's.
    pub per_entry: Option<&'a StoredModel>,
    /// MAML++'s per-step table.
    pub per_step: Option<&'a [Vec<f64>]>,
}

impl<'a> From<Option<&'a StoredModel>> for Sizes<'a> {
    fn from(per_entry: Option<&'a StoredModel>) -> Self {
        Self {
            per_entry,
            per_step: None,
        }
    }
}

impl ModelCheckpoint {
    /// The learned step sizes this checkpoint holds.
    pub fn sizes(&self) -> Sizes<'_> {
        Sizes {
            per_entry: self.step_sizes.as_ref(),
            per_step: self.step_table.as_deref(),
        }
    }
}

/// The linear model's checkpoints of the first version (still read).
#[derive(Deserialize)]
struct LinearCheckpointV1 {
    step: usize,
    config: TrainConfig,
    weights: LinearWeights,
}

/// The MLP-only checkpoints of earlier versions (still read).
#[derive(Deserialize)]
struct MlpCheckpointV2 {
    step: usize,
    config: TrainConfig,
    weights: MlpWeights,
    #[serde(default)]
    step_sizes: Option<MlpWeights>,
}

impl ModelCheckpoint {
    /// The format tag.
    pub const FORMAT: &'static str = "maml-burn checkpoint v3";
    /// The tag of the MLP-only format before it, read too.
    pub const FORMAT_V2: &'static str = "maml-burn checkpoint v2 (mlp)";
    /// The tag of the linear model's first format, read too.
    pub const FORMAT_V1: &'static str = "maml-burn checkpoint v1";

    /// Whether `path` holds a checkpoint of this format (or of an earlier one), by its
    /// format tag.
    pub fn is_one(path: &Path) -> bool {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_owned))
            .is_some_and(|f| [Self::FORMAT, Self::FORMAT_V2, Self::FORMAT_V1].contains(&f.as_str()))
    }

    /// Reads and checks a checkpoint (of this format or an earlier one: the linear
    /// model's, the MLP-only one).
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let value: serde_json::Value = maml_core::data::read_json(path)?;
        let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
        let parse_err = |e: serde_json::Error| MamlError::json(name.clone(), &e);
        let checkpoint = match format {
            Self::FORMAT => serde_json::from_value::<Self>(value).map_err(parse_err)?,
            Self::FORMAT_V1 => {
                let old: LinearCheckpointV1 = serde_json::from_value(value).map_err(parse_err)?;
                old.weights.validate(&format!("{name}: weights"))?;
                Self {
                    format: Self::FORMAT.into(),
                    step: old.step,
                    config: old.config,
                    model: StoredModel::linear(old.weights),
                    step_sizes: None,
                    step_table: None,
                }
            }
            Self::FORMAT_V2 => {
                let old: MlpCheckpointV2 = serde_json::from_value(value).map_err(parse_err)?;
                let activation = match &old.config.model {
                    Some(ModelConfig::Mlp(mlp)) => mlp.activation,
                    _ => Activation::Relu,
                };
                let spec = |w: MlpWeights| {
                    StoredModel::Mlp(ModelSpec {
                        layers: w.layers,
                        activation,
                    })
                };
                Self {
                    format: Self::FORMAT.into(),
                    step: old.step,
                    config: old.config,
                    model: spec(old.weights),
                    step_sizes: old.step_sizes.map(spec),
                    step_table: None,
                }
            }
            other => {
                return Err(MamlError::UnknownName {
                    kind: "checkpoint format",
                    value: other.into(),
                    expected: Self::FORMAT,
                });
            }
        };
        checkpoint.config.validate()?;
        let at = format!("{name}: model");
        checkpoint.model.shape(&at)?;
        if let Some(sizes) = &checkpoint.step_sizes {
            checkpoint.model.check_step_sizes(sizes, &at)?;
        }
        let adapt = &checkpoint.config.meta.adapt;
        check_step_table(
            checkpoint.step_table.as_deref(),
            adapt.per_step_lr,
            Some(adapt.inner_steps),
            None,
            &name,
        )?;
        Ok(checkpoint)
    }
}

/// Checks a stored per-step table: present exactly when the run learns one
/// (`per_step_lr`), `inner_steps` rows (`None`: any number, at least one; evaluation
/// repeats the last row past the table) of `params` entries each (`None`: of equal
/// length), every entry finite.
pub fn check_step_table(
    table: Option<&[Vec<f64>]>,
    per_step_lr: bool,
    inner_steps: Option<usize>,
    params: Option<usize>,
    name: &str,
) -> Result<()> {
    let wrong = |detail: String| MamlError::Shape {
        location: format!("{name}: step_table"),
        detail,
    };
    match (table, per_step_lr) {
        (None, false) => Ok(()),
        (None, true) => Err(wrong(
            "missing: the run learns per-step step sizes (per_step_lr)".into(),
        )),
        (Some(_), false) => Err(wrong(
            "given, but the run learns no per-step step sizes (per_step_lr is off)".into(),
        )),
        (Some(rows), true) => {
            match inner_steps {
                Some(k) if rows.len() != k => {
                    return Err(wrong(format!("{} rows for inner_steps = {k}", rows.len())));
                }
                None if rows.is_empty() => return Err(wrong("no rows".into())),
                _ => {}
            }
            let p = params.unwrap_or_else(|| rows.first().map_or(0, Vec::len));
            for (k, row) in rows.iter().enumerate() {
                if row.len() != p {
                    return Err(wrong(match params {
                        Some(_) => format!(
                            "row {k} has {} entries for a model of {p} parameter tensors",
                            row.len()
                        ),
                        None => format!("row {k} has {} entries, row 0 {p}", row.len()),
                    }));
                }
                if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                    return Err(MamlError::NonFinite {
                        value: *v,
                        location: format!("{name}: step_table[{k}]"),
                    });
                }
            }
            Ok(())
        }
    }
}
