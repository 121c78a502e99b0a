//! A meta-batch of tasks as batched tensors (`[tasks, n, in]`), so that every task of a
//! meta-batch runs through one set of tensor operations.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::config::Loss;
use crate::data::{SetData, TaskData};
use crate::model::linear_batched;

/// How each task's summed squared error is scaled into its loss.
#[derive(Debug, Clone)]
pub enum Scale<B: Backend> {
    /// The same factor for every task: 1 for `sse`, `1 / (n * out)` for `mse` when all
    /// tasks have `n` rows.
    Uniform(f64),
    /// One factor per task, `[tasks, 1, 1]` (`mse` with tasks of different sizes).
    PerTask(Tensor<B, 3>),
}

/// The support or the query sets of a meta-batch, padded to the largest set.
#[derive(Debug, Clone)]
pub struct SetBatch<B: Backend> {
    /// Features, `[tasks, n, in]`; padded rows are zero.
    pub x: Tensor<B, 3>,
    /// Targets, `[tasks, n, out]`; `None` when every target is zero (the seed's loss).
    pub y: Option<Tensor<B, 3>>,
    /// `[tasks, n, 1]`: 1 for real rows, 0 for padding; `None` when no task is padded.
    pub mask: Option<Tensor<B, 3>>,
    /// Loss scaling.
    pub scale: Scale<B>,
}

impl<B: Backend> SetBatch<B> {
    /// Batches one set per task. The sets must be validated (same `in`/`out`, non-empty).
    pub fn from_sets(sets: &[&SetData], d_out: usize, loss: Loss, device: &B::Device) -> Self {
        let tasks = sets.len();
        let d_in = sets[0].x[0].len();
        let n = sets.iter().map(|s| s.len()).max().unwrap_or(0);
        let ragged = sets.iter().any(|s| s.len() != n);
        let any_target = sets.iter().any(|s| s.y.is_some());

        let mut x = vec![0.0; tasks * n * d_in];
        let mut y = vec![0.0; tasks * n * d_out];
        let mut mask = vec![0.0; tasks * n];
        for (t, set) in sets.iter().enumerate() {
            for (i, row) in set.x.iter().enumerate() {
                let at = (t * n + i) * d_in;
                x[at..at + d_in].copy_from_slice(row);
                mask[t * n + i] = 1.0;
            }
            for (i, row) in set.y.iter().flatten().enumerate() {
                let at = (t * n + i) * d_out;
                y[at..at + d_out].copy_from_slice(row);
            }
        }
        let tensor = |v: Vec<f64>, shape: [usize; 3]| {
            Tensor::<B, 3>::from_data(TensorData::new(v, shape), device)
        };
        let scale = match (loss, ragged) {
            (Loss::Sse, _) => Scale::Uniform(1.0),
            (Loss::Mse, false) => Scale::Uniform(1.0 / (n * d_out) as f64),
            (Loss::Mse, true) => Scale::PerTask(tensor(
                sets.iter()
                    .map(|s| 1.0 / (s.len() * d_out) as f64)
                    .collect(),
                [tasks, 1, 1],
            )),
        };
        Self {
            x: tensor(x, [tasks, n, d_in]),
            y: any_target.then(|| tensor(y, [tasks, n, d_out])),
            mask: ragged.then(|| tensor(mask, [tasks, n, 1])),
            scale,
        }
    }

    /// Batches already-made tensors of equal-sized sets: `x [tasks, n, in]`,
    /// `y [tasks, n, out]`.
    pub fn from_tensors(x: Tensor<B, 3>, y: Option<Tensor<B, 3>>, loss: Loss) -> Self {
        let [_, n, _] = x.dims();
        let d_out = y.as_ref().map_or(1, |y| y.dims()[2]);
        let scale = match loss {
            Loss::Sse => 1.0,
            Loss::Mse => 1.0 / (n * d_out) as f64,
        };
        Self {
            x,
            y,
            mask: None,
            scale: Scale::Uniform(scale),
        }
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.x.dims()[0]
    }

    /// Each task's loss of the given per-task weights, `[tasks]`.
    ///
    /// `weight` is `[tasks, out, in]`, `bias` is `[tasks, out]`.
    pub fn losses(&self, weight: Tensor<B, 3>, bias: Tensor<B, 2>) -> Tensor<B, 1> {
        let tasks = self.tasks();
        let pred = linear_batched(self.x.clone(), weight, bias);
        let residual = match &self.y {
            Some(y) => pred - y.clone(),
            None => pred,
        };
        let mut squared = residual.clone() * residual;
        if let Some(mask) = &self.mask {
            squared = squared * mask.clone();
        }
        let per_task = squared.sum_dim(2).sum_dim(1); // [tasks, 1, 1]
        let per_task = match &self.scale {
            Scale::Uniform(1.0) => per_task,
            Scale::Uniform(s) => per_task.mul_scalar(*s),
            Scale::PerTask(s) => per_task * s.clone(),
        };
        per_task.reshape([tasks])
    }

    /// The same sets on the autodiff backend `A` wrapping `B` (untracked constants).
    pub fn lift<A: AutodiffBackend<InnerBackend = B>>(&self) -> SetBatch<A> {
        SetBatch {
            x: Tensor::from_inner(self.x.clone()),
            y: self.y.clone().map(Tensor::from_inner),
            mask: self.mask.clone().map(Tensor::from_inner),
            scale: match &self.scale {
                Scale::Uniform(s) => Scale::Uniform(*s),
                Scale::PerTask(s) => Scale::PerTask(Tensor::from_inner(s.clone())),
            },
        }
    }
}

/// A meta-batch: the support and query sets of each task.
#[derive(Debug, Clone)]
pub struct TaskBatch<B: Backend> {
    /// Support sets (inner loop).
    pub support: SetBatch<B>,
    /// Query sets (meta-loss).
    pub query: SetBatch<B>,
}

impl<B: Backend> TaskBatch<B> {
    /// Batches validated tasks (see [`crate::data::validate_tasks`]).
    pub fn from_tasks(tasks: &[TaskData], d_out: usize, loss: Loss, device: &B::Device) -> Self {
        let support: Vec<_> = tasks.iter().map(|t| &t.support).collect();
        let query: Vec<_> = tasks.iter().map(|t| &t.query).collect();
        Self {
            support: SetBatch::from_sets(&support, d_out, loss, device),
            query: SetBatch::from_sets(&query, d_out, loss, device),
        }
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.support.tasks()
    }

    /// Tasks `range` of the batch (e.g. one task, for per-task checks).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let cut = |s: &SetBatch<B>| SetBatch {
            x: s.x.clone().slice(range.clone()),
            y: s.y.clone().map(|y| y.slice(range.clone())),
            mask: s.mask.clone().map(|m| m.slice(range.clone())),
            scale: match &s.scale {
                Scale::Uniform(v) => Scale::Uniform(*v),
                Scale::PerTask(t) => Scale::PerTask(t.clone().slice(range.clone())),
            },
        };
        Self {
            support: cut(&self.support),
            query: cut(&self.query),
        }
    }
}
