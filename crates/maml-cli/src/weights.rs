//! The weights files of a run beside its checkpoint (`weights.json`, `step_sizes.json`,
//! `pretrained.json`), in the layouts of the problem files.

use std::path::Path;

use maml_burn::maml_core::MamlError;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::layers::LayeredSpec;
use maml_burn::maml_core::data::{read_json, write_atomic};
use maml_burn::maml_data::problem::ModelSpec;
use maml_burn::maml_data::stored::ModelKind;
use maml_burn::maml_data::stored::StoredModel;
use serde::Serialize;

use crate::error::CliError;

/// A model as a weights file, as problem files have it: the linear model's `weight` and
/// `bias` (version 1) when `linear`, else the layer list (version 2 for an MLP, version
/// 3 for a layered model).
pub fn write_model(path: &Path, model: &StoredModel, linear: bool) -> Result<(), CliError> {
    match (model, model.as_linear()) {
        (_, Some(weights)) if linear => write_json(path, weights),
        (StoredModel::Mlp(spec), _) => write_json(path, spec),
        (StoredModel::Layered(spec), _) => write_json(path, spec),
    }
}

/// Writes `value` as pretty JSON, atomically (a complete new file replaces the old).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let json = serde_json::to_string_pretty(value).expect("weights and checkpoints serialise");
    write_atomic(path, json.as_bytes())?;
    Ok(())
}

/// Reads a weights file of `kind` (`weights.json`, `pretrained.json`): an MLP's layer
/// list or the linear model's `weight` and `bias`, a layered model's layer list.
pub fn read_model(path: &Path, kind: ModelKind) -> Result<StoredModel, CliError> {
    let read = read_json::<serde_json::Value>;
    let parse = |value: serde_json::Value| -> Result<StoredModel, CliError> {
        let err = |e: serde_json::Error| MamlError::json(path.display().to_string(), &e);
        Ok(if value.get("layers").is_some() {
            StoredModel::Mlp(serde_json::from_value::<ModelSpec>(value).map_err(err)?)
        } else {
            StoredModel::linear(serde_json::from_value::<LinearWeights>(value).map_err(err)?)
        })
    };
    let model = match kind {
        ModelKind::Mlp => parse(read(path)?)?,
        ModelKind::Layered => StoredModel::Layered(read_json::<LayeredSpec>(path)?),
    };
    model.shape(&path.display().to_string())?;
    Ok(model)
}
