//! Data: host-side (f64) linear weights, tasks and task-set files, with validation that
//! names the bad value; the layer lists of problem files and checkpoints ([`layers`]); the
//! task families ([`families`]: the [`families::TaskFamily`] trait and the synthetic
//! families; image datasets live in the `maml-data` crate) and the tensors a meta-batch
//! is made of ([`batch`], padded and masked).

pub mod batch;
pub mod families;
pub mod layers;

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::config::{Loss, Order};
use crate::data::layers::{Array, LayerWeights};
use crate::error::{MamlError, Result};

/// Weights of a linear model `y = x W^T + b` in host memory, laid out as in problem files:
/// `weight` is `[out][in]`, `bias` is `[out]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearWeights {
    /// `[out][in]`.
    pub weight: Vec<Vec<f64>>,
    /// `[out]`.
    pub bias: Vec<f64>,
}

impl LinearWeights {
    /// Kaiming-normal weight (std = sqrt(2 / in), PyTorch's `kaiming_normal_` with its
    /// defaults, fan-in mode) and zero bias, drawn from an RNG seeded with `seed`.
    pub fn kaiming(d_in: usize, d_out: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let std = (2.0 / d_in as f64).sqrt();
        let normal = Normal::new(0.0, std).expect("std = sqrt(2 / in) is finite and positive");
        let weight = (0..d_out)
            .map(|_| (0..d_in).map(|_| normal.sample(&mut rng)).collect())
            .collect();
        Self {
            weight,
            bias: vec![0.0; d_out],
        }
    }

    /// Zero weight and bias of the given shape.
    pub fn zeros(d_in: usize, d_out: usize) -> Self {
        Self {
            weight: vec![vec![0.0; d_in]; d_out],
            bias: vec![0.0; d_out],
        }
    }

    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.weight.len()
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.weight.first().map_or(0, Vec::len)
    }

    /// The weight flattened row-major, `[out * in]`.
    pub fn weight_flat(&self) -> Vec<f64> {
        self.weight.iter().flatten().copied().collect()
    }

    /// Builds weights from a row-major `[out * in]` weight and an `[out]` bias.
    pub fn from_flat(weight: &[f64], bias: &[f64], d_in: usize) -> Self {
        Self {
            weight: weight.chunks(d_in.max(1)).map(<[f64]>::to_vec).collect(),
            bias: bias.to_vec(),
        }
    }

    /// Checks the layout (a non-empty rectangular `[out][in]` weight, `[out]` bias) and
    /// that every number is finite. `location` names the weights in messages.
    pub fn validate(&self, location: &str) -> Result<()> {
        if self.weight.is_empty() {
            return Err(MamlError::Empty {
                location: format!("{location}.weight"),
                detail: "the weight needs at least one row ([out][in])",
            });
        }
        let d_in = self.d_in();
        if d_in == 0 {
            return Err(MamlError::Empty {
                location: format!("{location}.weight[0]"),
                detail: "the weight needs at least one column ([out][in])",
            });
        }
        check_matrix(&self.weight, d_in, &format!("{location}.weight"))?;
        if self.bias.len() != self.d_out() {
            return Err(MamlError::Shape {
                location: format!("{location}.bias"),
                detail: format!(
                    "bias has {} entries but the weight has {} rows (out)",
                    self.bias.len(),
                    self.d_out()
                ),
            });
        }
        check_finite(&self.bias, &format!("{location}.bias"))
    }

    /// The weights as one layer of a layer list (`weight [out, in]`, `bias [out]`).
    pub fn to_layer(&self) -> LayerWeights {
        LayerWeights {
            weight: Some(Array::new(
                vec![self.d_out(), self.d_in()],
                self.weight_flat(),
            )),
            bias: Some(Array::new(vec![self.bias.len()], self.bias.clone())),
        }
    }

    /// One layer of a layer list read back (`None` unless it has a `[out, in]` weight and
    /// an `[out]` bias).
    pub fn from_layer(layer: &LayerWeights) -> Option<Self> {
        let (weight, bias) = (layer.weight.as_ref()?, layer.bias.as_ref()?);
        match (&weight.shape[..], &bias.shape[..]) {
            ([out, d_in], [b]) if out == b => {
                Some(Self::from_flat(&weight.values, &bias.values, *d_in))
            }
            _ => None,
        }
    }

    /// Largest absolute entry of weight and bias.
    pub fn max_abs(&self) -> f64 {
        self.weight_flat()
            .iter()
            .chain(&self.bias)
            .fold(0.0, |m, v| m.max(v.abs()))
    }

    /// Largest absolute entry-wise difference to `other` (same shape).
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        let a = self
            .weight_flat()
            .into_iter()
            .chain(self.bias.iter().copied());
        let b = other
            .weight_flat()
            .into_iter()
            .chain(other.bias.iter().copied());
        a.zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }
}

/// A support or query set: rows of features and optional targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetData {
    /// Features, `[n][in]`.
    pub x: Vec<Vec<f64>>,
    /// Targets, `[n][out]`; absent means a target of zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Vec<Vec<f64>>>,
}

impl SetData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether the set has no rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    fn validate(&self, d_in: usize, d_out: usize, location: &str) -> Result<()> {
        if self.x.is_empty() {
            return Err(MamlError::Empty {
                location: format!("{location}.x"),
                detail: "a support or query set needs at least one row",
            });
        }
        check_matrix(&self.x, d_in, &format!("{location}.x"))?;
        if let Some(y) = &self.y {
            if y.len() != self.x.len() {
                return Err(MamlError::Shape {
                    location: format!("{location}.y"),
                    detail: format!("{} target rows for {} feature rows", y.len(), self.x.len()),
                });
            }
            check_matrix(y, d_out, &format!("{location}.y"))?;
        }
        Ok(())
    }
}

/// One task: a support set to adapt on and a query set to evaluate the fast weights on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskData {
    /// The support set (inner loop).
    pub support: SetData,
    /// The query set (meta-loss).
    pub query: SetData,
}

impl TaskData {
    /// Checks both sets against the model's `in` and `out`; `location` names the task.
    pub fn validate(&self, d_in: usize, d_out: usize, location: &str) -> Result<()> {
        self.support
            .validate(d_in, d_out, &format!("{location}.support"))?;
        self.query
            .validate(d_in, d_out, &format!("{location}.query"))
    }
}

/// Checks a list of tasks against the model's shape.
pub fn validate_tasks(tasks: &[TaskData], d_in: usize, d_out: usize) -> Result<()> {
    if tasks.is_empty() {
        return Err(MamlError::Empty {
            location: "tasks".into(),
            detail: "at least one task is needed",
        });
    }
    for (i, task) in tasks.iter().enumerate() {
        task.validate(d_in, d_out, &format!("tasks[{i}]"))?;
    }
    Ok(())
}

/// A task-set file as people write them: `tasks`, and optionally the other fields of a
/// problem file (they become defaults where a command needs them; flags win).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSetFile {
    /// The tasks.
    pub tasks: Vec<TaskData>,
    /// A problem file's initial weight (unused by task sets).
    #[serde(default)]
    pub weight: Option<Vec<Vec<f64>>>,
    /// A problem file's initial bias (unused by task sets).
    #[serde(default)]
    pub bias: Option<Vec<f64>>,
    /// Inner step size.
    #[serde(default)]
    pub inner_lr: Option<f64>,
    /// Inner steps.
    #[serde(default)]
    pub inner_steps: Option<usize>,
    /// Order.
    #[serde(default)]
    pub order: Option<Order>,
    /// Loss.
    #[serde(default)]
    pub loss: Option<Loss>,
}

/// Checks a set of tasks of one shape, that of the first task, and returns that shape
/// `(in, out)` (`out` is 1 when the first task has no targets).
pub fn validate_task_set(tasks: &[TaskData]) -> Result<(usize, usize)> {
    let first = tasks.first().ok_or_else(|| MamlError::Empty {
        location: "tasks".into(),
        detail: "at least one task is needed",
    })?;
    let d_in = first.support.x.first().map_or(0, Vec::len);
    let d_out = first
        .support
        .y
        .as_ref()
        .or(first.query.y.as_ref())
        .and_then(|y| y.first())
        .map_or(1, Vec::len);
    validate_tasks(tasks, d_in, d_out)?;
    Ok((d_in, d_out))
}

impl TaskSetFile {
    /// Reads a task-set file and validates its tasks (all of one shape, that of the
    /// first task).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let set: Self = read_json(path)?;
        validate_task_set(&set.tasks)?;
        Ok(set)
    }

    /// The output width of the tasks (1 when no task has targets).
    pub fn d_out(&self) -> usize {
        self.tasks
            .iter()
            .flat_map(|t| [&t.support.y, &t.query.y])
            .flatten()
            .find_map(|y| y.first().map(Vec::len))
            .unwrap_or(1)
    }
}

/// The linear model's meta-loss, meta-gradient and each task's fast weights in its own
/// layout (`weight [out][in]`, `bias [out]`): what the closed form gives, and what an
/// answer of the linear model in a problem file (`maml_data::problem::Answer`) reads as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearAnswer {
    /// Mean query loss of the fast weights over the tasks.
    pub meta_loss: f64,
    /// Derivative of the meta-loss with respect to the initial weights.
    pub meta_grad: LinearWeights,
    /// `theta_K` for each task, in order.
    pub fast_weights: Vec<LinearWeights>,
}

/// Reads a whole text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| MamlError::io("cannot read", path, e))
}

fn check_matrix(rows: &[Vec<f64>], width: usize, location: &str) -> Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(MamlError::Shape {
                location: format!("{location}[{i}]"),
                detail: format!("row has {} entries, expected {width}", row.len()),
            });
        }
        check_finite(row, &format!("{location}[{i}]"))?;
    }
    Ok(())
}

fn check_finite(values: &[f64], location: &str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(j) => Err(MamlError::NonFinite {
            location: format!("{location}[{j}]"),
            value: values[j],
        }),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, synced,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a
/// partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MamlError::io("cannot write", path, e)
    })
}

/// Reads a JSON file into `T`, naming the file in errors (with line and column for bad
/// JSON).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| MamlError::json(path.display().to_string(), &e))
}
