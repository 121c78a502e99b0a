//! Closed-form ("manual") MAML for the linear model, in f64 and independent of autodiff:
//! the seed's "Manual" lines, generalised to any shapes, any K and both losses.
//!
//! Write `Θ = [W | b]` (`[out, in + 1]`) and append a column of ones to the features,
//! `X̃ = [X | 1]`. With `c = 1` (`sse`) or `c = 1 / (n * out)` (`mse`), a set's loss is
//! `L(Θ) = c ||X̃ Θ^T - Y||²` and its gradient `∇L = 2c (Θ S - R)` with `S = X̃^T X̃`,
//! `R = Y^T X̃`. One inner step is therefore affine:
//!
//! `Θ_{k+1} = Θ_k M + 2αc R`,  `M = I - 2αc S` (symmetric),
//!
//! so `Θ_K = Θ_0 M^K + B` and `dΘ_K / dΘ_0` acts as `G ↦ G (M^K)^T`. A task's
//! meta-gradient is `G_q (M^K)^T` in second order and `G_q` in first order, with
//! `G_q = ∇L_query(Θ_K)`. For the seed (`x_s = 1`, `α = 1`, one step) the weight entry is
//! `2 q x_q (1 - 2 x_s²) + 2 q (-2 x_s)`, the seed's formula.

use nalgebra::DMatrix;

use maml_core::config::{AdaptConfig, Loss, Order};
use maml_core::data::{LinearAnswer, LinearWeights, SetData, TaskData};

/// The quantities of one set: `c`, `S = X̃^T X̃` and `R = Y^T X̃`.
#[derive(Debug, Clone)]
pub struct SetMoments {
    /// Loss scale: 1 (`sse`) or `1 / (n * out)` (`mse`).
    pub c: f64,
    /// `[in + 1, in + 1]`.
    pub s: DMatrix<f64>,
    /// `[out, in + 1]`.
    pub r: DMatrix<f64>,
    /// `Σ ||y||²`, the constant of the loss.
    pub yy: f64,
}

impl SetMoments {
    /// Moments of a set for a model with `d_out` outputs.
    pub fn new(set: &SetData, d_out: usize, loss: Loss) -> Self {
        let n = set.len();
        let d_in = set.x[0].len();
        let x = DMatrix::from_fn(n, d_in + 1, |i, j| if j < d_in { set.x[i][j] } else { 1.0 });
        let y = match &set.y {
            Some(y) => DMatrix::from_fn(n, d_out, |i, j| y[i][j]),
            None => DMatrix::zeros(n, d_out),
        };
        let c = match loss {
            Loss::Sse => 1.0,
            Loss::Mse => 1.0 / (n * d_out) as f64,
            Loss::CrossEntropy => unreachable!("linear problems are validated to use sse or mse"),
        };
        Self {
            c,
            s: x.transpose() * &x,
            r: y.transpose() * &x,
            yy: y.norm_squared(),
        }
    }

    /// `L(Θ) = c (tr(Θ S Θ^T) - 2 tr(R Θ^T) + Σ||y||²)`.
    pub fn loss(&self, theta: &DMatrix<f64>) -> f64 {
        let quad = (theta * &self.s).component_mul(theta).sum();
        let lin = self.r.component_mul(theta).sum();
        self.c * (quad - 2.0 * lin + self.yy)
    }

    /// `∇L(Θ) = 2c (Θ S - R)`, `[out, in + 1]`.
    pub fn grad(&self, theta: &DMatrix<f64>) -> DMatrix<f64> {
        (theta * &self.s - &self.r) * (2.0 * self.c)
    }
}

/// `Θ_K = Θ_0 A + B` for one task: `A = M^K` (`[in + 1, in + 1]`) and `B` (`[out, in + 1]`).
#[derive(Debug, Clone)]
pub struct AffineAdaptation {
    /// `M^K`.
    pub a: DMatrix<f64>,
    /// The constant part of the fast weights.
    pub b: DMatrix<f64>,
}

impl AffineAdaptation {
    /// The inner loop of `config` on the support set with moments `support`.
    pub fn new(support: &SetMoments, d_out: usize, config: &AdaptConfig) -> Self {
        let dim = support.s.nrows();
        let step = 2.0 * config.inner_lr * support.c;
        let m = DMatrix::identity(dim, dim) - &support.s * step;
        let mut a = DMatrix::identity(dim, dim);
        let mut b = DMatrix::zeros(d_out, dim);
        for _ in 0..config.inner_steps {
            a = &a * &m;
            b = &b * &m + &support.r * step;
        }
        Self { a, b }
    }

    /// `Θ_K` for the initial `Θ_0`.
    pub fn apply(&self, theta0: &DMatrix<f64>) -> DMatrix<f64> {
        theta0 * &self.a + &self.b
    }
}

/// `[W | b]` as one `[out, in + 1]` matrix.
pub fn to_theta(weights: &LinearWeights) -> DMatrix<f64> {
    let (d_out, d_in) = (weights.d_out(), weights.d_in());
    DMatrix::from_fn(d_out, d_in + 1, |i, j| {
        if j < d_in {
            weights.weight[i][j]
        } else {
            weights.bias[i]
        }
    })
}

/// `[out, in + 1]` back to weights.
pub fn from_theta(theta: &DMatrix<f64>) -> LinearWeights {
    let d_in = theta.ncols() - 1;
    LinearWeights {
        weight: (0..theta.nrows())
            .map(|i| (0..d_in).map(|j| theta[(i, j)]).collect())
            .collect(),
        bias: (0..theta.nrows()).map(|i| theta[(i, d_in)]).collect(),
    }
}

/// Meta-loss, meta-gradient and fast weights of a (validated) meta-batch, in closed form.
pub fn meta_gradient(
    init: &LinearWeights,
    tasks: &[TaskData],
    config: &AdaptConfig,
) -> LinearAnswer {
    let d_out = init.d_out();
    let theta0 = to_theta(init);
    let mut meta_loss = 0.0;
    let mut grad = DMatrix::zeros(theta0.nrows(), theta0.ncols());
    let mut fast_weights = Vec::with_capacity(tasks.len());
    for task in tasks {
        let support = SetMoments::new(&task.support, d_out, config.loss);
        let query = SetMoments::new(&task.query, d_out, config.loss);
        let adaptation = AffineAdaptation::new(&support, d_out, config);
        let theta_k = adaptation.apply(&theta0);
        let g_query = query.grad(&theta_k);
        grad += match config.order {
            Order::First => g_query,
            Order::Second => g_query * adaptation.a.transpose(),
        };
        meta_loss += query.loss(&theta_k);
        fast_weights.push(from_theta(&theta_k));
    }
    let n = tasks.len() as f64;
    LinearAnswer {
        meta_loss: meta_loss / n,
        meta_grad: from_theta(&(grad / n)),
        fast_weights,
    }
}

/// The exact minimiser of the meta-loss and the first-order fixed point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimum {
    /// The minimiser of the meta-loss, where exact (second-order) MAML converges.
    pub second_order: LinearWeights,
    /// The point where the first-order meta-gradient vanishes, where first-order MAML
    /// converges.
    pub first_order: LinearWeights,
}

/// The exact MAML optimum over a fixed task set (f64 linear solves).
///
/// With `Θ_K = Θ₀ A_t + B_t` per task, the meta-loss `(1/n) Σ_t c_t ||X̃_t Θ_K^T - Y_t||²`
/// is a quadratic in `Θ₀`. Its gradient vanishes where
/// `Θ₀ Σ c_t A_t S_t A_t^T = Σ c_t (R_t - B_t S_t) A_t^T` (second order); the first-order
/// meta-gradient `Σ c_t ((Θ₀ A_t + B_t) S_t - R_t)` vanishes where
/// `Θ₀ Σ c_t A_t S_t = Σ c_t (R_t - B_t S_t)`. (`S_t`, `R_t` of the query sets.)
pub fn optimum(
    tasks: &[TaskData],
    d_out: usize,
    config: &AdaptConfig,
) -> maml_core::error::Result<Optimum> {
    let d_in = tasks[0].support.x[0].len();
    let dim = d_in + 1;
    let (mut h2, mut c2) = (DMatrix::zeros(dim, dim), DMatrix::zeros(d_out, dim));
    let (mut h1, mut c1) = (DMatrix::zeros(dim, dim), DMatrix::zeros(d_out, dim));
    for task in tasks {
        let support = SetMoments::new(&task.support, d_out, config.loss);
        let query = SetMoments::new(&task.query, d_out, config.loss);
        let ad = AffineAdaptation::new(&support, d_out, config);
        let a_s = &ad.a * &query.s;
        let rhs = (&query.r - &ad.b * &query.s) * query.c;
        h2 += &a_s * ad.a.transpose() * query.c;
        c2 += &rhs * ad.a.transpose();
        h1 += a_s * query.c;
        c1 += rhs;
    }
    let solve = |h: DMatrix<f64>, c: DMatrix<f64>, which: &'static str| {
        // Θ H = C  <=>  H^T Θ^T = C^T
        h.transpose()
            .lu()
            .solve(&c.transpose())
            .map(|t| from_theta(&t.transpose()))
            .ok_or(maml_core::error::MamlError::Singular { which })
    };
    Ok(Optimum {
        second_order: solve(h2, c2, "second-order meta-loss")?,
        first_order: solve(h1, c1, "first-order fixed-point equation")?,
    })
}
