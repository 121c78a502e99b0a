//! A meta-batch for any model: each task's support and query sets padded to the largest,
//! with a row mask, so every task runs through one set of tensor operations.
//!
//! Padded rows are excluded from every loss by the mask and from each task's mean by its
//! own row count: once the model is not linear, a padded zero row predicts `f(0) != 0`
//! and would otherwise change the loss and the meta-gradient.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;

use crate::config::Loss;
use crate::data::{SetData, TaskData};

/// How each task's summed per-row loss is scaled into its loss.
#[derive(Debug, Clone)]
enum Scale<B: Backend> {
    /// The same factor for every task.
    Uniform(f64),
    /// One factor per task, `[tasks]`.
    PerTask(Tensor<B, 1>),
}

/// The support or the query sets of a meta-batch.
#[derive(Debug, Clone)]
pub struct Sets<B: Backend> {
    /// Features, `[tasks, n, in]`; padded rows are zero.
    pub x: Tensor<B, 3>,
    /// Targets, `[tasks, n, out]` (one-hot rows for `cross_entropy`); `None`: all zero.
    pub y: Option<Tensor<B, 3>>,
    /// `[tasks, n, 1]`: 1 for real rows, 0 for padding; `None` when no task is padded.
    pub mask: Option<Tensor<B, 3>>,
    /// Each task's number of real rows.
    rows: Vec<usize>,
    /// The loss and each task's scale, set by [`Sets::with_loss`]: the learner applies its
    /// configuration's loss ([`crate::config::AdaptConfig::loss`]) before scoring.
    loss: Option<(Loss, Scale<B>)>,
    d_out: usize,
}

impl<B: Backend> Sets<B> {
    /// Batches one set per task (validated: same `in` / `out`, at least one row), in the
    /// backend's own precision.
    pub fn from_sets(sets: &[&SetData], d_out: usize, device: &B::Device) -> Self {
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
        let rows: Vec<usize> = sets.iter().map(|s| s.len()).collect();
        Self {
            x: tensor(x, [tasks, n, d_in]),
            y: any_target.then(|| tensor(y, [tasks, n, d_out])),
            mask: ragged.then(|| tensor(mask, [tasks, n, 1])),
            rows,
            loss: None,
            d_out,
        }
    }

    /// Equal-sized sets given as tensors: `x [tasks, n, in]`, targets `y [tasks, n, out]`
    /// (one-hot rows for cross-entropy).
    pub fn from_tensors(x: Tensor<B, 3>, y: Option<Tensor<B, 3>>) -> Self {
        let [tasks, n, _] = x.dims();
        let d_out = y.as_ref().map_or(1, |y| y.dims()[2]);
        Self {
            x,
            y,
            mask: None,
            rows: vec![n; tasks],
            loss: None,
            d_out,
        }
    }

    /// The same sets scored with `loss` (cheap: tensors are shared). The learner and
    /// every function that takes an [`crate::config::AdaptConfig`] apply its loss
    /// themselves.
    pub fn with_loss(&self, loss: Loss) -> Self {
        if matches!(&self.loss, Some((l, _)) if *l == loss) {
            return self.clone();
        }
        let scale = scale(loss, &self.rows, self.d_out, &self.x.device());
        Self {
            loss: Some((loss, scale)),
            ..self.clone()
        }
    }

    /// The loss and scale, set by [`Self::with_loss`].
    fn scored(&self) -> (Loss, &Scale<B>) {
        let (loss, scale) = self
            .loss
            .as_ref()
            .expect("the learner applies its AdaptConfig's loss to a batch (Sets::with_loss) before scoring it");
        (*loss, scale)
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.x.dims()[0]
    }

    /// The loss applied by [`Self::with_loss`], if any.
    pub fn loss(&self) -> Option<Loss> {
        self.loss.as_ref().map(|(l, _)| *l)
    }

    /// Each row's loss summed over outputs, masked, `[tasks, n, 1]`, and the uniform
    /// factor still to apply.
    fn row_losses(&self, pred: Tensor<B, 3>) -> (Tensor<B, 3>, f64) {
        let (loss, scale) = self.scored();
        let per_element = match loss {
            Loss::Sse | Loss::Mse => {
                let residual = match &self.y {
                    Some(y) => pred - y.clone(),
                    None => pred,
                };
                residual.clone() * residual
            }
            Loss::CrossEntropy => {
                let log_p = log_softmax(pred, 2);
                match &self.y {
                    Some(y) => (log_p * y.clone()).neg(),
                    // No labels: nothing to predict (validation rejects this).
                    None => log_p.zeros_like(),
                }
            }
        };
        let mut rows = per_element.sum_dim(2);
        if let Some(mask) = &self.mask {
            rows = rows * mask.clone();
        }
        match scale {
            Scale::Uniform(s) => (rows, *s),
            Scale::PerTask(s) => (rows * s.clone().reshape([self.tasks(), 1, 1]), 1.0),
        }
    }

    /// The sum over tasks of each task's loss of predictions `pred [tasks, n, out]`,
    /// `[1]`. Tasks are independent, so its gradient with respect to per-task weights
    /// holds each task's own gradient.
    pub fn total_loss(&self, pred: Tensor<B, 3>) -> Tensor<B, 1> {
        let (rows, s) = self.row_losses(pred);
        let total = rows.sum();
        if s == 1.0 { total } else { total.mul_scalar(s) }
    }

    /// Each task's loss of predictions `pred [tasks, n, out]`, `[tasks]`.
    pub fn task_losses(&self, pred: Tensor<B, 3>) -> Tensor<B, 1> {
        let tasks = self.tasks();
        let (rows, s) = self.row_losses(pred);
        let per_task = rows.sum_dim(1).reshape([tasks]);
        if s == 1.0 {
            per_task
        } else {
            per_task.mul_scalar(s)
        }
    }

    /// Each task's accuracy of predictions `pred [tasks, n, out]`, `[tasks]`: the share of
    /// its real rows whose largest prediction is at its target's largest entry (the
    /// class, for one-hot targets); 0 without targets.
    pub fn task_accuracies(&self, pred: Tensor<B, 3>) -> Tensor<B, 1> {
        let tasks = self.tasks();
        let Some(y) = &self.y else {
            return Tensor::zeros([tasks], &pred.device());
        };
        let mut hits = pred.argmax(2).equal(y.clone().argmax(2)).float();
        if let Some(mask) = &self.mask {
            hits = hits * mask.clone();
        }
        let rows: Vec<f64> = self.rows.iter().map(|&r| r.max(1) as f64).collect();
        let rows = Tensor::<B, 1>::from_data(TensorData::new(rows, [tasks]), &hits.device());
        hits.sum_dim(1).reshape([tasks]) / rows
    }

    /// `∂ total_loss / ∂ pred`, `[tasks, n, out]`: each task's own loss gradient (for the
    /// hand-derived MLP gradients of [`crate::algo::analytic`]). Squared error: `2 (pred - y)`;
    /// cross-entropy: `softmax(pred) Σ_j y_j - y`; masked and scaled as the loss.
    pub(crate) fn loss_gradient(&self, pred: Tensor<B, 3>) -> Tensor<B, 3> {
        let grad = match self.scored().0 {
            Loss::Sse | Loss::Mse => match &self.y {
                Some(y) => (pred - y.clone()).mul_scalar(2.0),
                None => pred.mul_scalar(2.0),
            },
            Loss::CrossEntropy => match &self.y {
                Some(y) => softmax(pred, 2) * y.clone().sum_dim(2) - y.clone(),
                None => pred.zeros_like(),
            },
        };
        self.weigh(grad)
    }

    /// `∂² total_loss / ∂ pred² · r` for a direction `r [tasks, n, out]`. Squared error:
    /// `2 r`; cross-entropy: `(p ⊙ r - p (p · r)) Σ_j y_j` with `p = softmax(pred)` (the
    /// softmax Jacobian, per row); masked and scaled as the loss.
    pub(crate) fn loss_hessian_product(&self, pred: Tensor<B, 3>, r: Tensor<B, 3>) -> Tensor<B, 3> {
        let product = match self.scored().0 {
            Loss::Sse | Loss::Mse => r.mul_scalar(2.0),
            Loss::CrossEntropy => match &self.y {
                Some(y) => {
                    let p = softmax(pred, 2);
                    let pr = p.clone() * r;
                    (pr.clone() - p * pr.sum_dim(2)) * y.clone().sum_dim(2)
                }
                None => r.zeros_like(),
            },
        };
        self.weigh(product)
    }

    /// Applies the row mask and the loss's scale to per-element derivatives.
    pub(crate) fn weigh(&self, t: Tensor<B, 3>) -> Tensor<B, 3> {
        let t = match &self.mask {
            Some(mask) => t * mask.clone(),
            None => t,
        };
        match self.scored().1 {
            Scale::Uniform(s) if *s == 1.0 => t,
            Scale::Uniform(s) => t.mul_scalar(*s),
            Scale::PerTask(s) => t * s.clone().reshape([self.tasks(), 1, 1]),
        }
    }

    /// The same sets on the autodiff backend `A` wrapping `B` (untracked constants).
    pub fn lift<A: AutodiffBackend<InnerBackend = B>>(&self) -> Sets<A> {
        Sets {
            x: Tensor::from_inner(self.x.clone()),
            y: self.y.clone().map(Tensor::from_inner),
            mask: self.mask.clone().map(Tensor::from_inner),
            rows: self.rows.clone(),
            loss: self.loss.as_ref().map(|(loss, scale)| {
                let scale = match scale {
                    Scale::Uniform(s) => Scale::Uniform(*s),
                    Scale::PerTask(s) => Scale::PerTask(Tensor::from_inner(s.clone())),
                };
                (*loss, scale)
            }),
            d_out: self.d_out,
        }
    }

    /// Tasks `range` of the sets.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            x: self.x.clone().slice(range.clone()),
            y: self.y.clone().map(|y| y.slice(range.clone())),
            mask: self.mask.clone().map(|m| m.slice(range.clone())),
            rows: self.rows[range.clone()].to_vec(),
            loss: self.loss.as_ref().map(|(loss, scale)| {
                let scale = match scale {
                    Scale::Uniform(v) => Scale::Uniform(*v),
                    Scale::PerTask(t) => Scale::PerTask(t.clone().slice(range)),
                };
                (*loss, scale)
            }),
            d_out: self.d_out,
        }
    }
}

impl<B: Backend> Sets<B> {
    /// Task `t` alone, without its padded rows: `x [1, rows_t, in]`. Models that run task
    /// by task see only real rows (a statistic over the rows, batch norm's, stays the
    /// task's own).
    pub fn task(&self, t: usize) -> Self {
        let one = self.slice(t..t + 1);
        let n = self.rows[t];
        if one.x.dims()[1] == n {
            return Self { mask: None, ..one };
        }
        Self {
            x: one.x.slice([0..1, 0..n]),
            y: one.y.map(|y| y.slice([0..1, 0..n])),
            mask: None,
            ..one
        }
    }
}

fn scale<B: Backend>(loss: Loss, rows: &[usize], d_out: usize, device: &B::Device) -> Scale<B> {
    let per_task = |n: usize| match loss {
        Loss::Sse => 1.0,
        Loss::Mse => 1.0 / (n * d_out) as f64,
        Loss::CrossEntropy => 1.0 / n as f64,
    };
    let first = rows.first().copied().unwrap_or(1);
    if rows.iter().all(|&n| n == first) {
        Scale::Uniform(per_task(first))
    } else {
        let values: Vec<f64> = rows.iter().map(|&n| per_task(n)).collect();
        let tasks = values.len();
        Scale::PerTask(Tensor::from_data(TensorData::new(values, [tasks]), device))
    }
}

/// A meta-batch: the support and query sets of each task.
#[derive(Debug, Clone)]
pub struct MetaBatch<B: Backend> {
    /// Support sets (inner loop).
    pub support: Sets<B>,
    /// Query sets (meta-loss).
    pub query: Sets<B>,
}

impl<B: Backend> MetaBatch<B> {
    /// Batches validated tasks given as host rows, with `d_out` outputs per row.
    pub fn from_tasks(tasks: &[TaskData], d_out: usize, device: &B::Device) -> Self {
        let support: Vec<_> = tasks.iter().map(|t| &t.support).collect();
        let query: Vec<_> = tasks.iter().map(|t| &t.query).collect();
        Self {
            support: Sets::from_sets(&support, d_out, device),
            query: Sets::from_sets(&query, d_out, device),
        }
    }

    /// A meta-batch of equal-sized tasks given as tensors: support `x [tasks, n, in]` and
    /// targets `y [tasks, n, out]`, query `x [tasks, m, in]` and `y [tasks, m, out]`
    /// (one-hot rows for cross-entropy).
    pub fn from_tensors(
        support_x: Tensor<B, 3>,
        support_y: Tensor<B, 3>,
        query_x: Tensor<B, 3>,
        query_y: Tensor<B, 3>,
    ) -> Self {
        Self {
            support: Sets::from_tensors(support_x, Some(support_y)),
            query: Sets::from_tensors(query_x, Some(query_y)),
        }
    }

    /// The same batch scored with `loss` ([`Sets::with_loss`]).
    pub fn with_loss(&self, loss: Loss) -> Self {
        Self {
            support: self.support.with_loss(loss),
            query: self.query.with_loss(loss),
        }
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.support.tasks()
    }

    /// Tasks `range` of the batch.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            support: self.support.slice(range.clone()),
            query: self.query.slice(range),
        }
    }
}

/// The tasks of worker `rank` of `workers` in a meta-batch of `tasks`: contiguous
/// shards whose sizes differ by at most one (a worker may get none when there are more
/// workers than tasks).
pub fn shard_range(tasks: usize, workers: usize, rank: usize) -> std::ops::Range<usize> {
    let workers = workers.max(1);
    let (base, extra) = (tasks / workers, tasks % workers);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start..(start + len).min(tasks)
}
