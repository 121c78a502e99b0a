//! The tensors of the hand-derived road: batched products over the task axis (shared
//! weights as one matrix over all tasks' rows) and [`Matrix`], a weight-shaped matrix
//! kept as low-rank factors while they are smaller than it.

use burn::prelude::*;

/// `a [tasks, n, k] · w [tasks | 1, k, m]` (`w` transposed first when `transpose`:
/// `w [tasks | 1, m, k]`), `[tasks, n, m]`. Shared weights multiply all rows at once.
pub(super) fn product<B: Backend>(
    a: Tensor<B, 3>,
    w: &Tensor<B, 3>,
    transpose: bool,
) -> Tensor<B, 3> {
    let [tasks, n, k] = a.dims();
    let [w_tasks, _, _] = w.dims();
    let w = if transpose {
        w.clone().swap_dims(1, 2)
    } else {
        w.clone()
    };
    if w_tasks == 1 && tasks > 1 {
        let [_, _, m] = w.dims();
        let w2: Tensor<B, 2> = w.reshape([k, m]);
        a.reshape([tasks * n, k]).matmul(w2).reshape([tasks, n, m])
    } else {
        a.matmul(w)
    }
}

/// `a^T δ` per task, `[tasks, k, m]`, or summed over tasks, `[1, k, m]` (one matmul over
/// all tasks' rows): `a [tasks, n, k]`, `δ [tasks, n, m]`.
pub(super) fn outer<B: Backend>(
    a: &Tensor<B, 3>,
    delta: &Tensor<B, 3>,
    per_task: bool,
) -> Tensor<B, 3> {
    if per_task {
        return a.clone().swap_dims(1, 2).matmul(delta.clone());
    }
    let [tasks, n, k] = a.dims();
    let [_, _, m] = delta.dims();
    let a: Tensor<B, 2> = a.clone().reshape([tasks * n, k]);
    let delta: Tensor<B, 2> = delta.clone().reshape([tasks * n, m]);
    a.transpose().matmul(delta).reshape([1, k, m])
}

/// `Σ_i a_i^T δ_i` ([`outer`] of each pair, summed).
pub(super) fn outer_sum<B: Backend>(
    pairs: &[(&Tensor<B, 3>, &Tensor<B, 3>)],
    per_task: bool,
) -> Tensor<B, 3> {
    let mut terms = pairs.iter().map(|&(a, d)| outer(a, d, per_task));
    let first = terms.next().expect("at least one pair");
    terms.fold(first, |acc, t| acc + t)
}

/// `Σ_rows δ` per task, `[tasks, 1, m]`, or summed over tasks too, `[1, 1, m]`.
pub(super) fn row_sum<B: Backend>(delta: &Tensor<B, 3>, per_task: bool) -> Tensor<B, 3> {
    if per_task {
        return delta.clone().sum_dim(1);
    }
    let [tasks, n, m] = delta.dims();
    let delta: Tensor<B, 2> = delta.clone().reshape([tasks * n, m]);
    delta.sum_dim(0).reshape([1, 1, m])
}

/// `t [tasks, ..]` summed over tasks, `[1, ..]` (unchanged when already `[1, ..]`).
pub(super) fn task_sum<B: Backend>(t: Tensor<B, 3>) -> Tensor<B, 3> {
    if t.dims()[0] == 1 { t } else { t.sum_dim(0) }
}

/// `t [tasks | 1, ..]` with one entry per task: a shared `t` repeated.
pub(super) fn one_per_task<B: Backend>(t: Tensor<B, 3>, tasks: usize) -> Tensor<B, 3> {
    if t.dims()[0] == tasks {
        t
    } else {
        t.repeat_dim(0, tasks)
    }
}

/// A weight-shaped matrix of every task, `[tasks | 1, k, m]` (a layer's `W^T`, its
/// gradient, a Hessian direction): dense, or `base + scale · left^T right` with a
/// per-task low-rank part, `left [tasks, r, k]`, `right [tasks, r, m]` and `base` shared
/// (`[1, k, m]`) or zero.
///
/// A support or query gradient `a^T δ` has rank at most the set's `n` rows, and so has
/// the change an inner step makes to the weights (a Hessian-vector product: `2n`).
/// While the factors are smaller than the matrix, `r (k + m) < k m` (the sinusoid's
/// 40 × 40 layer and 10 points: 800 against 1,600), they are kept, and a product
/// `x · M` is `x · base + scale (x left^T) right` through an `[rows, r]` kernel per task,
/// never forming `[tasks, k, m]`; on Flex 0.21 forming it, a per-task outer product
/// `[40, 10] · [10, 40]`, costs about five times a per-task `[10, 40] · [40, 40]`
/// product (gemm is slow at a small inner dimension). Factors of successive steps are
/// stacked while the rule holds.
#[derive(Clone)]
pub(super) enum Matrix<B: Backend> {
    Dense(Tensor<B, 3>),
    LowRank {
        base: Option<Tensor<B, 3>>,
        left: Tensor<B, 3>,
        right: Tensor<B, 3>,
        scale: f64,
    },
}

impl<B: Backend> Matrix<B> {
    /// `Σ_i a_i^T δ_i` per task (`a_i [tasks, n_i, k]`, `δ_i [tasks, n_i, m]`), factored
    /// (the `a_i` and `δ_i` stacked by rows) while its rank is low.
    pub(super) fn outer(pairs: &[(&Tensor<B, 3>, &Tensor<B, 3>)]) -> Self {
        let [_, _, k] = pairs[0].0.dims();
        let m = pairs[0].1.dims()[2];
        let rank: usize = pairs.iter().map(|(a, _)| a.dims()[1]).sum();
        if low_rank(rank, k, m) {
            let (left, right): (Vec<_>, Vec<_>) =
                pairs.iter().map(|&(a, d)| (a.clone(), d.clone())).unzip();
            Self::LowRank {
                base: None,
                left: Tensor::cat(left, 1),
                right: Tensor::cat(right, 1),
                scale: 1.0,
            }
        } else {
            Self::Dense(outer_sum(pairs, true))
        }
    }

    /// `x · M`: `x [tasks, n, k]`, `[tasks, n, m]`.
    pub(super) fn times(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.apply(x, false)
    }

    /// `x · M^T`: `x [tasks, n, m]`, `[tasks, n, k]`.
    pub(super) fn times_transposed(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.apply(x, true)
    }

    /// `x · M`, or `x · M^T` when `transpose` (then the factors swap roles).
    pub(super) fn apply(&self, x: Tensor<B, 3>, transpose: bool) -> Tensor<B, 3> {
        match self {
            Self::Dense(w) => product(x, w, transpose),
            Self::LowRank {
                base,
                left,
                right,
                scale,
            } => {
                let (near, far) = if transpose {
                    (right, left)
                } else {
                    (left, right)
                };
                let kernel = scaled(x.clone().matmul(near.clone().swap_dims(1, 2)), *scale);
                let low = kernel.matmul(far.clone());
                match base {
                    Some(base) => product(x, base, transpose) + low,
                    None => low,
                }
            }
        }
    }

    /// `s · M`.
    pub(super) fn scaled(self, s: f64) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(w.mul_scalar(s)),
            Self::LowRank {
                base,
                left,
                right,
                scale,
            } => Self::LowRank {
                base: base.map(|b| b.mul_scalar(s)),
                left,
                right,
                scale: scale * s,
            },
        }
    }

    /// As a tensor, `[tasks | 1, k, m]`.
    pub(super) fn dense(self) -> Tensor<B, 3> {
        match self {
            Self::Dense(w) => w,
            Self::LowRank {
                base,
                left,
                right,
                scale,
            } => {
                let low = scaled(left.swap_dims(1, 2).matmul(right), scale);
                match base {
                    Some(base) => plus(&base, low),
                    None => low,
                }
            }
        }
    }

    /// Summed over tasks, `[1, k, m]` (a shared matrix unchanged): a low-rank part is
    /// one matmul over all tasks' rows.
    pub(super) fn task_sum(self) -> Tensor<B, 3> {
        match self {
            Self::LowRank {
                base: None,
                left,
                right,
                scale,
            } => {
                let [tasks, r, k] = left.dims();
                let m = right.dims()[2];
                let left: Tensor<B, 2> = left.reshape([tasks * r, k]);
                let right: Tensor<B, 2> = right.reshape([tasks * r, m]);
                scaled(left.transpose().matmul(right), scale).reshape([1, k, m])
            }
            other => task_sum(other.dense()),
        }
    }

    /// `self - s`: a shared dense matrix, or a factored one, minus a factored one (the
    /// fast weights of scalar inner steps, the reverse sweep's `v - H u`) stays factored
    /// while the rank stays low; anything else is dense.
    pub(super) fn minus(&self, s: Self) -> Self {
        match (self, s) {
            (
                Self::Dense(theta),
                Self::LowRank {
                    base: None,
                    left,
                    right,
                    scale,
                },
            ) if theta.dims()[0] == 1 => Self::LowRank {
                base: Some(theta.clone()),
                left,
                right,
                scale: -scale,
            },
            (
                Self::LowRank {
                    base,
                    left: l1,
                    right: r1,
                    scale: s1,
                },
                Self::LowRank {
                    base: None,
                    left: l2,
                    right: r2,
                    scale: s2,
                },
            ) if low_rank(l1.dims()[1] + l2.dims()[1], l1.dims()[2], r1.dims()[2]) => {
                Self::LowRank {
                    base: base.clone(),
                    left: Tensor::cat(vec![l1.clone(), l2], 1),
                    right: Tensor::cat(vec![scaled(r1.clone(), *s1), r2.mul_scalar(-s2)], 1),
                    scale: 1.0,
                }
            }
            (theta, s) => Self::Dense(minus(&theta.clone().dense(), s.dense())),
        }
    }
}

/// Whether a `k × m` matrix of rank `r` is kept factored: its factors are smaller.
pub(super) fn low_rank(r: usize, k: usize, m: usize) -> bool {
    r * (k + m) < k * m
}

/// `t · s`, skipping the multiplication by one.
pub(super) fn scaled<B: Backend, const D: usize>(t: Tensor<B, D>, s: f64) -> Tensor<B, D> {
    if s == 1.0 { t } else { t.mul_scalar(s) }
}

/// `[d0, ...]` as `[d0, rest]`, so that a shared `[1, rest]` operand is one row broadcast
/// over tasks (Flex's fast broadcast path).
pub(super) fn rows<B: Backend>(t: Tensor<B, 3>) -> Tensor<B, 2> {
    let [d0, d1, d2] = t.dims();
    t.reshape([d0, d1 * d2])
}

/// `θ + s` with `θ` shared (`[1, ..]`) or per task, `s [tasks, ..]`.
pub(super) fn plus<B: Backend>(theta: &Tensor<B, 3>, s: Tensor<B, 3>) -> Tensor<B, 3> {
    let shape = s.dims();
    if theta.dims()[0] == 1 && shape[0] > 1 {
        (rows(s) + rows(theta.clone())).reshape(shape)
    } else {
        theta.clone() + s
    }
}

/// `θ - s` with `θ` shared (`[1, ..]`) or per task, `s [tasks, ..]`.
pub(super) fn minus<B: Backend>(theta: &Tensor<B, 3>, s: Tensor<B, 3>) -> Tensor<B, 3> {
    plus(theta, s.neg())
}
