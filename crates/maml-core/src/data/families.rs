//! Task families: where meta-batches come from.

use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::{SetData, TaskData, validate_task_set};
use crate::error::{MamlError, Result};

/// A distribution over tasks of one shape.
pub trait TaskFamily {
    /// `in` of every task.
    fn d_in(&self) -> usize;
    /// `out` of every task.
    fn d_out(&self) -> usize;
    /// Draws a meta-batch of `tasks` tasks.
    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData>;
    /// `[C, H, W]` when every example is an image (flattened to `in = C·H·W`).
    fn image_shape(&self) -> Option<[usize; 3]> {
        None
    }
}

/// The seed's task, always the same: support x = 1, query x = 2, zero targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeedFamily;

impl SeedFamily {
    /// The seed's task: support x = 1, query x = 2, no targets (loss `model(x) ** 2`).
    pub fn task() -> TaskData {
        TaskData {
            support: SetData {
                x: vec![vec![1.0]],
                y: None,
            },
            query: SetData {
                x: vec![vec![2.0]],
                y: None,
            },
        }
    }
}

impl TaskFamily for SeedFamily {
    fn d_in(&self) -> usize {
        1
    }
    fn d_out(&self) -> usize {
        1
    }
    fn sample(&self, tasks: usize, _rng: &mut StdRng) -> Vec<TaskData> {
        vec![Self::task(); tasks]
    }
}

/// Linear-regression tasks `y = x A^T + c + noise`: per task, `A [out, in]` and `c [out]`
/// have entries `N(coef_mean, coef_std²)` and `N(offset_mean, offset_std²)`;
/// `x ~ N(0, I)`; `noise ~ N(0, noise²)`. With the defaults this is the peers' task
/// distribution (shared/peers): `a ~ N(0, I)`, `c ~ N(0, 1)`, no noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFamily {
    /// `in`.
    pub d_in: usize,
    /// `out`.
    pub d_out: usize,
    /// Support rows per task.
    pub support_shots: usize,
    /// Query rows per task.
    pub query_shots: usize,
    /// Standard deviation of the target noise.
    pub noise: f64,
    /// Mean of the entries of `A`.
    pub coef_mean: f64,
    /// Standard deviation of the entries of `A`.
    pub coef_std: f64,
    /// Mean of the entries of `c`.
    pub offset_mean: f64,
    /// Standard deviation of the entries of `c`.
    pub offset_std: f64,
}

impl Default for LinearFamily {
    fn default() -> Self {
        Self {
            d_in: 16,
            d_out: 1,
            support_shots: 10,
            query_shots: 15,
            noise: 0.0,
            coef_mean: 0.0,
            coef_std: 1.0,
            offset_mean: 0.0,
            offset_std: 1.0,
        }
    }
}

impl LinearFamily {
    /// Checks sizes and spreads.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("in", self.d_in),
            ("out", self.d_out),
            ("support_shots", self.support_shots),
            ("query_shots", self.query_shots),
        ] {
            if value == 0 {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: "0".into(),
                    reason: "must be at least 1",
                });
            }
        }
        for (name, value) in [
            ("noise", self.noise),
            ("coef_std", self.coef_std),
            ("offset_std", self.offset_std),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: value.to_string(),
                    reason: "must be finite and not negative",
                });
            }
        }
        for (name, value) in [
            ("coef_mean", self.coef_mean),
            ("offset_mean", self.offset_mean),
        ] {
            if !value.is_finite() {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: value.to_string(),
                    reason: "must be finite",
                });
            }
        }
        Ok(())
    }
}

fn normal(rng: &mut StdRng, mean: f64, std: f64) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    mean + std * z
}

impl TaskFamily for LinearFamily {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.d_out
    }
    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData> {
        (0..tasks)
            .map(|_| {
                let a: Vec<Vec<f64>> = (0..self.d_out)
                    .map(|_| {
                        (0..self.d_in)
                            .map(|_| normal(rng, self.coef_mean, self.coef_std))
                            .collect()
                    })
                    .collect();
                let c: Vec<f64> = (0..self.d_out)
                    .map(|_| normal(rng, self.offset_mean, self.offset_std))
                    .collect();
                let mut set = |n: usize| {
                    let x: Vec<Vec<f64>> = (0..n)
                        .map(|_| (0..self.d_in).map(|_| normal(rng, 0.0, 1.0)).collect())
                        .collect();
                    let y = x
                        .iter()
                        .map(|row| {
                            a.iter()
                                .zip(&c)
                                .map(|(a_o, c_o)| {
                                    let dot: f64 = a_o.iter().zip(row).map(|(a, x)| a * x).sum();
                                    dot + c_o + normal(rng, 0.0, self.noise)
                                })
                                .collect()
                        })
                        .collect();
                    SetData { x, y: Some(y) }
                };
                let support = set(self.support_shots);
                let query = set(self.query_shots);
                TaskData { support, query }
            })
            .collect()
    }
}

/// A fixed set of tasks (e.g. the `tasks` of a problem file). A meta-batch is all of
/// them, or a random subset of a given size, drawn without replacement.
#[derive(Debug, Clone)]
pub struct FixedTasks {
    tasks: Vec<TaskData>,
    d_in: usize,
    d_out: usize,
}

impl FixedTasks {
    /// Validated tasks, all of shape `in` -> `out`.
    pub fn new(tasks: Vec<TaskData>) -> Result<Self> {
        let (d_in, d_out) = validate_task_set(&tasks)?;
        Ok(Self { tasks, d_in, d_out })
    }

    /// Every task.
    pub fn tasks(&self) -> &[TaskData] {
        &self.tasks
    }
}

impl TaskFamily for FixedTasks {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.d_out
    }
    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData> {
        if tasks >= self.tasks.len() {
            return self.tasks.clone();
        }
        rand::seq::index::sample(rng, self.tasks.len(), tasks)
            .into_iter()
            .map(|i| self.tasks[i].clone())
            .collect()
    }
}

impl LinearFamily {
    /// Draws a meta-batch as tensors: the normals come from `rng` on the host (a fast
    /// generator, e.g. `rand::rngs::SmallRng`), are uploaded once per tensor, and the
    /// targets `y = x A^T + c + noise` are computed on the device. For benchmarks and
    /// fast training; [`TaskFamily::sample`] gives host-side tasks.
    pub fn sample_batch<B: burn::prelude::Backend, R: rand::Rng>(
        &self,
        tasks: usize,
        rng: &mut R,
        device: &B::Device,
    ) -> crate::data::batch::MetaBatch<B> {
        use burn::tensor::{Tensor, TensorData};
        let mut normal = |shape: [usize; 3], mean: f64, std: f64| {
            let n = shape.iter().product();
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    mean + std * z
                })
                .collect();
            Tensor::<B, 3>::from_data(TensorData::new(values, shape), device)
        };
        let coef = normal(
            [tasks, self.d_in, self.d_out],
            self.coef_mean,
            self.coef_std,
        );
        let offset = normal([tasks, 1, self.d_out], self.offset_mean, self.offset_std);
        let mut set = |n: usize| {
            let x = normal([tasks, n, self.d_in], 0.0, 1.0);
            let mut y = x.clone().matmul(coef.clone()) + offset.clone();
            if self.noise > 0.0 {
                y = y + normal([tasks, n, self.d_out], 0.0, self.noise);
            }
            crate::data::batch::Sets::from_tensors(x, Some(y))
        };
        let support = set(self.support_shots);
        let query = set(self.query_shots);
        crate::data::batch::MetaBatch { support, query }
    }
}

/// The MAML paper's sinusoid regression (Finn et al. 2017, section 5.1): per task
/// `y = A sin(x - φ)`, `A ~ U[amp_min, amp_max]` (0.1, 5), `φ ~ U[0, π]`,
/// `x ~ U[x_min, x_max]` (-5, 5); K support and K query points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinusoidFamily {
    /// Support points per task (K).
    pub support_shots: usize,
    /// Query points per task.
    pub query_shots: usize,
    /// Smallest amplitude.
    pub amp_min: f64,
    /// Largest amplitude.
    pub amp_max: f64,
    /// Smallest input.
    pub x_min: f64,
    /// Largest input.
    pub x_max: f64,
}

impl Default for SinusoidFamily {
    fn default() -> Self {
        Self {
            support_shots: 10,
            query_shots: 10,
            amp_min: 0.1,
            amp_max: 5.0,
            x_min: -5.0,
            x_max: 5.0,
        }
    }
}

/// One sinusoid task's amplitude and phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sinusoid {
    /// `A`.
    pub amplitude: f64,
    /// `φ`.
    pub phase: f64,
}

impl Sinusoid {
    /// `A sin(x - φ)`.
    pub fn at(&self, x: f64) -> f64 {
        self.amplitude * (x - self.phase).sin()
    }
}

impl SinusoidFamily {
    /// Checks shot counts and ranges.
    pub fn validate(&self) -> Result<()> {
        check_shots(self.support_shots, self.query_shots)?;
        for (name, lo, hi) in [
            ("amp_min..amp_max", self.amp_min, self.amp_max),
            ("x_min..x_max", self.x_min, self.x_max),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: format!("{lo}..{hi}"),
                    reason: "must be a finite range, low <= high",
                });
            }
        }
        Ok(())
    }

    /// Draws one task's function and its support and query sets.
    pub fn sample_task(&self, rng: &mut StdRng) -> (Sinusoid, TaskData) {
        use rand::Rng;
        let sine = Sinusoid {
            amplitude: rng.random_range(self.amp_min..=self.amp_max),
            phase: rng.random_range(0.0..=std::f64::consts::PI),
        };
        let mut set = |n: usize| {
            let x: Vec<f64> = (0..n)
                .map(|_| rng.random_range(self.x_min..=self.x_max))
                .collect();
            SetData {
                y: Some(x.iter().map(|&x| vec![sine.at(x)]).collect()),
                x: x.into_iter().map(|x| vec![x]).collect(),
            }
        };
        let support = set(self.support_shots);
        let query = set(self.query_shots);
        (sine, TaskData { support, query })
    }
}

fn check_shots(support: usize, query: usize) -> Result<()> {
    for (name, value) in [("support_shots", support), ("query_shots", query)] {
        if value == 0 {
            return Err(MamlError::InvalidHyperparameter {
                name,
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
    }
    Ok(())
}

impl TaskFamily for SinusoidFamily {
    fn d_in(&self) -> usize {
        1
    }
    fn d_out(&self) -> usize {
        1
    }
    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData> {
        (0..tasks).map(|_| self.sample_task(rng).1).collect()
    }
}

/// N-way K-shot classification of Gaussian clusters: per task, `ways` class centres
/// `~ N(0, centre_std² I)` in `d_in` dimensions, points `centre + N(0, spread² I)`;
/// `support_shots` and `query_shots` points per class; targets one-hot (for
/// `cross_entropy`). Classes are in a random order per task, as in few-shot learning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobsFamily {
    /// Classes per task (N).
    pub ways: usize,
    /// Input dimension.
    pub d_in: usize,
    /// Support points per class (K).
    pub support_shots: usize,
    /// Query points per class.
    pub query_shots: usize,
    /// Spread of the class centres.
    pub centre_std: f64,
    /// Spread of the points around their centre.
    pub spread: f64,
}

impl Default for BlobsFamily {
    fn default() -> Self {
        Self {
            ways: 5,
            d_in: 2,
            support_shots: 5,
            query_shots: 5,
            centre_std: 3.0,
            spread: 1.0,
        }
    }
}

impl BlobsFamily {
    /// Checks sizes and spreads.
    pub fn validate(&self) -> Result<()> {
        check_shots(self.support_shots, self.query_shots)?;
        for (name, value) in [("ways", self.ways), ("in", self.d_in)] {
            if value == 0 || (name == "ways" && value < 2) {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: value.to_string(),
                    reason: "must be at least 2 classes and 1 input",
                });
            }
        }
        for (name, value) in [("centre_std", self.centre_std), ("spread", self.spread)] {
            if !value.is_finite() || value < 0.0 {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: value.to_string(),
                    reason: "must be finite and not negative",
                });
            }
        }
        Ok(())
    }
}

impl TaskFamily for BlobsFamily {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.ways
    }
    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData> {
        (0..tasks)
            .map(|_| {
                let centres: Vec<Vec<f64>> = (0..self.ways)
                    .map(|_| {
                        (0..self.d_in)
                            .map(|_| normal(rng, 0.0, self.centre_std))
                            .collect()
                    })
                    .collect();
                let mut set = |per_class: usize| {
                    let mut set = SetData {
                        x: Vec::new(),
                        y: Some(Vec::new()),
                    };
                    for _ in 0..per_class {
                        for (class, centre) in centres.iter().enumerate() {
                            set.x.push(
                                centre
                                    .iter()
                                    .map(|&c| normal(rng, c, self.spread))
                                    .collect(),
                            );
                            let mut one_hot = vec![0.0; self.ways];
                            one_hot[class] = 1.0;
                            set.y.as_mut().expect("set above").push(one_hot);
                        }
                    }
                    set
                };
                let support = set(self.support_shots);
                let query = set(self.query_shots);
                TaskData { support, query }
            })
            .collect()
    }
}
