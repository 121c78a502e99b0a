//! A meta-batch of tasks as batched tensors (`[tasks, n, in + 1]`), so that every task of
//! a meta-batch runs through one set of tensor operations.
//!
//! Features carry an appended column of ones (`x̃ = [x | 1]`), so a linear model with
//! weights `Θ = [W | b]` is one batched matmul, `x̃ Θ^T`, and its weight and bias get one
//! gradient and one update. Padded rows (tasks of different sizes) are all zero, the ones
//! column included, so they predict 0 against a target of 0 and add nothing to a loss:
//! no mask is needed.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::config::Loss;
use crate::data::{SetData, TaskData};

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
    /// Features with a column of ones appended, `[tasks, n, in + 1]`; padded rows are
    /// zero.
    pub x: Tensor<B, 3>,
    /// Targets, `[tasks, n, out]`; `None` when every target is zero (the seed's loss).
    pub y: Option<Tensor<B, 3>>,
    /// Loss scaling.
    pub scale: Scale<B>,
}

impl<B: Backend> SetBatch<B> {
    /// Batches one set per task. The sets must be validated (same `in`/`out`, non-empty).
    pub fn from_sets(sets: &[&SetData], d_out: usize, loss: Loss, device: &B::Device) -> Self {
        let tasks = sets.len();
        let d_in = sets[0].x[0].len();
        let cols = d_in + 1;
        let n = sets.iter().map(|s| s.len()).max().unwrap_or(0);
        let ragged = sets.iter().any(|s| s.len() != n);
        let any_target = sets.iter().any(|s| s.y.is_some());

        let mut x = vec![0.0; tasks * n * cols];
        let mut y = vec![0.0; tasks * n * d_out];
        for (t, set) in sets.iter().enumerate() {
            for (i, row) in set.x.iter().enumerate() {
                let at = (t * n + i) * cols;
                x[at..at + d_in].copy_from_slice(row);
                x[at + d_in] = 1.0;
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
            (Loss::CrossEntropy, _) => {
                unreachable!("the linear fast path is validated to use sse or mse")
            }
            (Loss::Mse, true) => Scale::PerTask(tensor(
                sets.iter()
                    .map(|s| 1.0 / (s.len() * d_out) as f64)
                    .collect(),
                [tasks, 1, 1],
            )),
        };
        Self {
            x: tensor(x, [tasks, n, cols]),
            y: any_target.then(|| tensor(y, [tasks, n, d_out])),
            scale,
        }
    }

    /// Batches equal-sized sets given as tensors: `x [tasks, n, in]` (without the ones
    /// column), `y [tasks, n, out]`.
    pub fn from_tensors(x: Tensor<B, 3>, y: Option<Tensor<B, 3>>, loss: Loss) -> Self {
        let [tasks, n, _] = x.dims();
        let d_out = y.as_ref().map_or(1, |y| y.dims()[2]);
        let ones = Tensor::ones([tasks, n, 1], &x.device());
        let scale = match loss {
            Loss::Sse => 1.0,
            Loss::Mse => 1.0 / (n * d_out) as f64,
            Loss::CrossEntropy => {
                unreachable!("the linear fast path is validated to use sse or mse")
            }
        };
        Self {
            x: Tensor::cat(vec![x, ones], 2),
            y,
            scale: Scale::Uniform(scale),
        }
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.x.dims()[0]
    }

    /// Scaled squared residuals of per-task weights `theta_t [tasks, in + 1, out]`
    /// (`Θ^T`), `[tasks, n, out]`, and the uniform factor still to apply.
    fn squares(&self, theta_t: Tensor<B, 3>) -> (Tensor<B, 3>, f64) {
        self.squares_of(self.residual(self.x.clone().matmul(theta_t)))
    }

    /// `pred - y` of predictions `pred [tasks, n, out]`.
    pub(crate) fn residual(&self, pred: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.y {
            Some(y) => pred - y.clone(),
            None => pred,
        }
    }

    /// [`Self::squares`] of residuals `[tasks, n, out]`.
    fn squares_of(&self, residual: Tensor<B, 3>) -> (Tensor<B, 3>, f64) {
        let squared = residual.clone() * residual;
        match &self.scale {
            Scale::Uniform(s) => (squared, *s),
            Scale::PerTask(s) => (squared * s.clone(), 1.0),
        }
    }

    /// The sum over tasks of each task's loss, `[1]`, for per-task weights
    /// `theta_t [tasks, in + 1, out]`. Tasks are independent, so its gradient with
    /// respect to `theta_t` holds every task's own loss gradient.
    pub fn total_loss(&self, theta_t: Tensor<B, 3>) -> Tensor<B, 1> {
        let (squared, s) = self.squares(theta_t);
        let total = squared.sum();
        if s == 1.0 { total } else { total.mul_scalar(s) }
    }

    /// Each task's loss, `[tasks]`, for per-task weights `theta_t [tasks, in + 1, out]`.
    pub fn task_losses(&self, theta_t: Tensor<B, 3>) -> Tensor<B, 1> {
        self.residual_task_losses(self.residual(self.x.clone().matmul(theta_t)))
    }

    /// Each task's loss of residuals `[tasks, n, out]` ([`Self::residual`]), `[tasks]`.
    pub(crate) fn residual_task_losses(&self, residual: Tensor<B, 3>) -> Tensor<B, 1> {
        let tasks = self.tasks();
        let (squared, s) = self.squares_of(residual);
        let per_task = squared.sum_dim(2).sum_dim(1).reshape([tasks]);
        if s == 1.0 {
            per_task
        } else {
            per_task.mul_scalar(s)
        }
    }

    /// `2 s t`, with `s` each task's loss factor (`t [tasks, ..]`): the loss `s Σ r²` has
    /// the derivative `2 s r` in the residuals `r` and the second derivative `2 s`.
    pub(crate) fn times_loss_slope(&self, t: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.scale {
            Scale::Uniform(s) => t.mul_scalar(2.0 * s),
            Scale::PerTask(s) => {
                let shape = t.dims();
                let [tasks, n, k] = shape;
                // One factor per row of `[tasks, n k]`: a Flex 0.21 broadcast fast path.
                let rows: Tensor<B, 2> = t.reshape([tasks, n * k]);
                (rows * s.clone().reshape([tasks, 1]))
                    .reshape(shape)
                    .mul_scalar(2.0)
            }
        }
    }

    /// The same sets on the autodiff backend `A` wrapping `B` (untracked constants).
    pub fn lift<A: AutodiffBackend<InnerBackend = B>>(&self) -> SetBatch<A> {
        SetBatch {
            x: Tensor::from_inner(self.x.clone()),
            y: self.y.clone().map(Tensor::from_inner),
            scale: match &self.scale {
                Scale::Uniform(s) => Scale::Uniform(*s),
                Scale::PerTask(s) => Scale::PerTask(Tensor::from_inner(s.clone())),
            },
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            x: self.x.clone().slice(range.clone()),
            y: self.y.clone().map(|y| y.slice(range.clone())),
            scale: match &self.scale {
                Scale::Uniform(v) => Scale::Uniform(*v),
                Scale::PerTask(t) => Scale::PerTask(t.clone().slice(range)),
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
        Self {
            support: self.support.slice(range.clone()),
            query: self.query.slice(range),
        }
    }
}
