//! Version-4 problems (`docs/problem-schema.md`, "Version 4"): the parts of MAML's
//! family a problem file combines (learned per-step step sizes, inner optimizers, the
//! adapted layers, a multi-step loss, Reptile), read and checked here, every message
//! naming the field and the value.
//!
//! Per-step step sizes `per_step[k][layer] = {weight, bias}` are held as a layer list
//! whose arrays are `[K]` (a layer's sizes over the steps), `{}` where the inner loop
//! does not adapt the layer, so that they compare and print like any other weights.

use serde::{Deserialize, Serialize};

use maml_core::config::InnerOptimizer;
use maml_core::data::layers::{Array, LayerSpec, LayerWeights, LayeredSpec, LayeredWeights};
use maml_core::error::{MamlError, Result};

/// The family's fields of a problem (all absent in versions 1 to 3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Family {
    /// The inner update rule (`inner_optimizer`; default SGD).
    pub inner_optimizer: InnerOptimizer,
    /// The layers the inner loop adapts (`inner_layers`; `None`: all).
    pub inner_layers: Option<Vec<usize>>,
    /// MAML++'s multi-step loss weights, one per inner step.
    pub step_loss_weights: Option<Vec<f64>>,
    /// Reptile instead of MAML (`"algorithm": "reptile"`).
    pub reptile: bool,
}

/// `inner_lr.per_step` as written in a file: `[K][layers]` of `{weight, bias}` or `{}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerStepFile {
    /// One list per inner step, one entry per layer.
    pub per_step: Vec<Vec<LayerWeights>>,
}

impl PerStepFile {
    /// The sizes as a layer list of `[K]` arrays (see the module docs), checked: one list
    /// per step, each as long as the model's, the same layers given at every step, every
    /// entry a number.
    pub fn to_layered(&self, layers: usize, location: &str) -> Result<LayeredWeights> {
        let mut out = vec![LayerWeights::default(); layers];
        for (k, step) in self.per_step.iter().enumerate() {
            if step.len() != layers {
                return Err(MamlError::Shape {
                    location: format!("{location}.per_step[{k}]"),
                    detail: format!(
                        "{} entries for a model of {layers} layers (one per layer, {{}} for \
                         a layer the inner loop does not adapt)",
                        step.len()
                    ),
                });
            }
            for (l, entry) in step.iter().enumerate() {
                let at = format!("{location}.per_step[{k}][{l}]");
                let LayerWeights { weight, bias } = &mut out[l];
                let slots = [
                    (&entry.weight, weight, "weight"),
                    (&entry.bias, bias, "bias"),
                ];
                for (given, slot, name) in slots {
                    let value = match given {
                        None => None,
                        Some(a) if a.shape.is_empty() => Some(a.values[0]),
                        Some(a) => {
                            return Err(MamlError::Shape {
                                location: format!("{at}.{name}"),
                                detail: format!(
                                    "a step size is one number, not shape {:?}",
                                    a.shape
                                ),
                            });
                        }
                    };
                    match (value, k == 0, slot.as_mut()) {
                        (Some(v), true, _) => *slot = Some(Array::new(vec![1], vec![v])),
                        (Some(v), false, Some(array)) => {
                            array.values.push(v);
                            array.shape = vec![array.values.len()];
                        }
                        (None, _, None) => {}
                        _ => {
                            return Err(MamlError::Shape {
                                location: format!("{at}.{name}"),
                                detail: "given at some steps and not at others".into(),
                            });
                        }
                    }
                }
            }
        }
        Ok(LayeredWeights { layers: out })
    }

    /// The inverse of [`Self::to_layered`].
    pub fn from_layered(sizes: &LayeredWeights) -> Self {
        let steps = sizes.arrays().map(|a| a.values.len()).max().unwrap_or(0);
        let scalar =
            |a: &Option<Array>, k: usize| a.as_ref().map(|a| Array::new(vec![], vec![a.values[k]]));
        Self {
            per_step: (0..steps)
                .map(|k| {
                    sizes
                        .layers
                        .iter()
                        .map(|l| LayerWeights {
                            weight: scalar(&l.weight, k),
                            bias: scalar(&l.bias, k),
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// The name of a layer, for messages.
pub(crate) fn layer_name(layer: &LayerSpec) -> &'static str {
    match layer {
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::BatchNorm { per_step: true, .. } => "per-step batch_norm",
        LayerSpec::BatchNorm { .. } => "batch_norm",
        LayerSpec::Relu => "relu",
        LayerSpec::Tanh => "tanh",
        LayerSpec::MaxPool2d { .. } => "max_pool2d",
        LayerSpec::MeanSpatial => "mean_spatial",
        LayerSpec::Flatten => "flatten",
        LayerSpec::Linear { .. } => "linear",
    }
}

/// Whether the inner loop can adapt a layer: it has parameters and is not a per-step
/// batch norm.
fn adaptable(layer: &LayerSpec) -> bool {
    matches!(
        layer,
        LayerSpec::Conv2d { .. }
            | LayerSpec::Linear { .. }
            | LayerSpec::BatchNorm {
                per_step: false,
                ..
            }
    )
}

/// The layers the inner loop adapts: `inner_layers` (checked: in range, adaptable, no
/// repeats) or every adaptable layer.
pub fn adapted_layers(model: &LayeredSpec, inner_layers: Option<&[usize]>) -> Result<Vec<bool>> {
    let Some(list) = inner_layers else {
        return Ok(model.layers.iter().map(adaptable).collect());
    };
    let mut adapted = vec![false; model.layers.len()];
    for (i, &l) in list.iter().enumerate() {
        let at = || format!("inner_layers[{i}]");
        let Some(layer) = model.layers.get(l) else {
            return Err(MamlError::Shape {
                location: at(),
                detail: format!(
                    "layer index {l} is out of range (the model has {} layers)",
                    model.layers.len()
                ),
            });
        };
        if !adaptable(layer) {
            return Err(MamlError::Shape {
                location: at(),
                detail: format!(
                    "layer {l} ({}) has no parameters the inner loop can adapt",
                    layer_name(layer)
                ),
            });
        }
        if std::mem::replace(&mut adapted[l], true) {
            return Err(MamlError::Shape {
                location: at(),
                detail: format!("layer {l} is listed twice"),
            });
        }
    }
    Ok(adapted)
}

/// The indices, in the layered model's visit order (weight, then bias, layer by layer),
/// of the parameters of the adapted layers.
pub fn param_indices(model: &LayeredSpec, adapted: &[bool]) -> Vec<usize> {
    let mut index = 0;
    let mut out = Vec::new();
    for (layer, &on) in model.layers.iter().zip(adapted) {
        if model_has_params(layer) {
            if on {
                out.extend([index, index + 1]);
            }
            index += 2;
        }
    }
    out
}

fn model_has_params(layer: &LayerSpec) -> bool {
    matches!(
        layer,
        LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. } | LayerSpec::BatchNorm { .. }
    )
}

/// Checks per-step step sizes (a layer list of `[K]` arrays) against the model and the
/// adapted layers: `K` sizes for exactly the adapted layers, each finite and positive.
pub fn check_per_step(
    sizes: &LayeredWeights,
    model: &LayeredSpec,
    adapted: &[bool],
    steps: usize,
) -> Result<()> {
    for (l, (layer, &on)) in sizes.layers.iter().zip(adapted).enumerate() {
        for (array, name) in [(&layer.weight, "weight"), (&layer.bias, "bias")] {
            let at = format!("inner_lr.per_step[k][{l}].{name}");
            match (array, on) {
                (Some(a), true) => {
                    if a.values.len() != steps {
                        return Err(MamlError::Shape {
                            location: "inner_lr.per_step".into(),
                            detail: format!(
                                "{} steps of step sizes for inner_steps = {steps}",
                                a.values.len()
                            ),
                        });
                    }
                    for &v in &a.values {
                        maml_core::config::check_lr("inner_lr.per_step", v).map_err(|_| {
                            MamlError::Shape {
                                location: at.clone(),
                                detail: format!("step size {v} must be finite and positive"),
                            }
                        })?;
                    }
                }
                (None, false) => {}
                (Some(_), false) => {
                    return Err(MamlError::Shape {
                        location: at,
                        detail: format!(
                            "layer {l} ({}) is not adapted by the inner loop: give {{}}",
                            layer_name(&model.layers[l])
                        ),
                    });
                }
                (None, true) => {
                    return Err(MamlError::Shape {
                        location: at,
                        detail: format!(
                            "layer {l} ({}) is adapted by the inner loop: give its step size",
                            layer_name(&model.layers[l])
                        ),
                    });
                }
            }
        }
    }
    if sizes.layers.len() != model.layers.len() && steps > 0 {
        return Err(MamlError::Shape {
            location: "inner_lr.per_step".into(),
            detail: format!(
                "{} layers of step sizes for a model of {} layers",
                sizes.layers.len(),
                model.layers.len()
            ),
        });
    }
    Ok(())
}

/// Checks that every per-step batch norm has `inner_steps + 1` sets.
pub fn check_per_step_norms(model: &LayeredSpec, steps: usize) -> Result<()> {
    for (l, layer) in model.layers.iter().enumerate() {
        if let LayerSpec::BatchNorm {
            weight,
            per_step: true,
            ..
        } = layer
        {
            let sets = weight.shape.first().copied().unwrap_or(0);
            if sets != steps + 1 {
                return Err(MamlError::Shape {
                    location: format!("model.layers[{l}].weight"),
                    detail: format!(
                        "a per-step batch norm needs inner_steps + 1 = {} sets, found {sets}",
                        steps + 1
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The per-step sizes as the learner's table `[K, P]` (row-major values): column `p` is
/// the `p`-th parameter tensor in visit order, zero where the layer is not adapted.
pub fn table_values(
    sizes: &LayeredWeights,
    model: &LayeredSpec,
    steps: usize,
) -> (Vec<f64>, usize) {
    let columns: Vec<Option<&Array>> = model
        .layers
        .iter()
        .zip(&sizes.layers)
        .filter(|(layer, _)| model_has_params(layer))
        .flat_map(|(_, w)| [w.weight.as_ref(), w.bias.as_ref()])
        .collect();
    let p = columns.len();
    let mut values = vec![0.0; steps * p];
    for (c, column) in columns.iter().enumerate() {
        if let Some(a) = column {
            for k in 0..steps {
                values[k * p + c] = a.values[k];
            }
        }
    }
    (values, p)
}

/// The inverse of [`table_values`]: a table `[K, P]` (a gradient) read back into the
/// layout of `like` (the problem's per-step sizes).
pub fn table_to_layered(
    values: &[f64],
    steps: usize,
    model: &LayeredSpec,
    like: &LayeredWeights,
) -> LayeredWeights {
    let p = values.len().checked_div(steps).unwrap_or(0);
    let mut column = 0;
    let mut out = like.clone();
    for (layer, w) in model.layers.iter().zip(out.layers.iter_mut()) {
        if !model_has_params(layer) {
            continue;
        }
        for slot in [&mut w.weight, &mut w.bias] {
            if let Some(a) = slot {
                a.values = (0..steps).map(|k| values[k * p + column]).collect();
            }
            column += 1;
        }
    }
    out
}
