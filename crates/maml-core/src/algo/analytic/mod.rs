//! Exact meta-gradients of the built-in [`Mlp`](crate::model::mlp::Mlp) by hand-derived
//! back-propagation, on the plain backend `B`: no autodiff graph at either level. (An MLP
//! of one layer with a squared loss, the linear model, takes a shorter road of its own,
//! [`linear`].)
//!
//! Nested autodiff ([`crate::model::SecondOrder`]) works for any model but records every
//! operation twice and accumulates gradients through Burn's bookkeeping; for the MLP the
//! same numbers follow from its layer equations. With `θ_{i+1} = θ_i - α ⊙ g(θ_i)` (`g`
//! the support gradient, per task) and the meta-loss `L = mean_t ℓ_q(θ_K)`, reverse mode
//! through the inner loop is
//!
//! ```text
//! v_K = ∇ℓ_q(θ_K) / tasks
//! v_i = v_{i+1} - H(θ_i) (α ⊙ v_{i+1})      (second order; first order: v_i = v_{i+1})
//! dL/dθ_0 = Σ_t v_0,   dL/dα = -Σ_t Σ_i g(θ_i) ⊙ v_{i+1}   (Meta-SGD)
//! ```
//!
//! where `H(θ_i) u` is the support loss's Hessian-vector product, computed exactly by
//! Pearlmutter's R-operator: a forward pass of directional derivatives `R{z_l}` and a
//! backward pass of `R{δ_l}` alongside the layer's ordinary gradient. Every product is a
//! batched matmul over the task axis; the shared initial weights (task axis 1) are
//! multiplied as one matrix over all tasks' rows.
//!
//! Layer `l` (1-based, `L` layers): `z_l = a_{l-1} W_l^T + b_l`, `a_l = σ(z_l)` for `l < L`,
//! output `z_L`. Backward: `δ_L = ∂ℓ/∂z_L`, `∇W_l^T = a_{l-1}^T δ_l`, `∇b_l = Σ_rows δ_l`,
//! `e_{l-1} = δ_l W_l`, `δ_{l-1} = e_{l-1} ⊙ σ'(z_{l-1})`.

use burn::prelude::*;

use crate::config::AdaptConfig;
use crate::data::batch::{MetaBatch, Sets};
use crate::model::mlp::{Activation, add_task_bias};

mod linear;
mod matrix;
mod sweep;

use matrix::{Matrix, outer, outer_sum, row_sum, rows};
use sweep::shard_meta_gradient;

/// One layer's tensors: `W^T [tasks | 1, in, out]` and `b [tasks | 1, 1, out]`.
pub(crate) type Layer<B> = (Tensor<B, 3>, Tensor<B, 3>);

/// A [`Layer`] inside the algorithm, its weight matrix possibly factored.
type Weights<B> = (Matrix<B>, Tensor<B, 3>);

/// Layer by layer, `a + b`.
fn sum_layers<B: Backend>(a: Vec<Layer<B>>, b: Vec<Layer<B>>) -> Vec<Layer<B>> {
    a.into_iter()
        .zip(b)
        .map(|((a_w, a_b), (b_w, b_b))| (a_w + b_w, a_b + b_b))
        .collect()
}

/// `v ⊙ α` with `α` one per parameter entry (`[1, ..]`, shared by tasks) or a scalar.
fn times_step<B: Backend>(
    v: Tensor<B, 3>,
    step: Step<'_, B>,
    l: usize,
    bias: bool,
) -> Tensor<B, 3> {
    match step {
        Step::Scalar(lr) => v.mul_scalar(lr),
        Step::PerParameter(sizes) => {
            let alpha = if bias { &sizes[l].1 } else { &sizes[l].0 };
            let shape = v.dims();
            (rows(v) * rows(alpha.clone())).reshape(shape)
        }
    }
}

/// [`times_step`] of a layer's weight matrix: a scalar keeps it factored.
fn times_step_matrix<B: Backend>(v: Matrix<B>, step: Step<'_, B>, l: usize) -> Matrix<B> {
    match step {
        Step::Scalar(lr) => v.scaled(lr),
        Step::PerParameter(_) => Matrix::Dense(times_step(v.dense(), step, l, false)),
    }
}

/// Inner step sizes.
enum Step<'a, B: Backend> {
    Scalar(f64),
    PerParameter(&'a [Layer<B>]),
}

// By hand: a derive would ask for `B: Copy`.
impl<B: Backend> Clone for Step<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Step<'_, B> {}

/// A forward pass, kept for the backward pass and the Hessian-vector product.
struct Pass<B: Backend> {
    /// `a_{l-1}`, each layer's input.
    inputs: Vec<Tensor<B, 3>>,
    /// `σ'(z_l)` of each hidden layer.
    slopes: Vec<Tensor<B, 3>>,
    /// `σ''(z_l)` of each hidden layer (`None` for ReLU, whose `σ''` is zero).
    curvatures: Vec<Option<Tensor<B, 3>>>,
    /// `z_L`, the predictions.
    out: Tensor<B, 3>,
}

fn forward<B: Backend>(layers: &[Weights<B>], activation: Activation, x: Tensor<B, 3>) -> Pass<B> {
    let last = layers.len() - 1;
    let mut inputs = Vec::with_capacity(layers.len());
    let mut slopes = Vec::with_capacity(last);
    let mut curvatures = Vec::with_capacity(last);
    let mut h = x;
    for (w, b) in &layers[..last] {
        inputs.push(h.clone());
        let z = add_task_bias(w.times(h), b.clone());
        let (a, slope, curvature) = match activation {
            Activation::Relu => {
                // σ'(0) = 0, as Burn's relu backward.
                let slope = z.clone().greater_elem(0.0).float();
                (z * slope.clone(), slope, None)
            }
            Activation::Tanh => {
                let a = z.tanh();
                let slope = a.clone().powi_scalar(2).neg().add_scalar(1.0);
                // σ'' = -2 tanh(z) σ'(z).
                let curvature = (a.clone() * slope.clone()).mul_scalar(-2.0);
                (a, slope, Some(curvature))
            }
        };
        slopes.push(slope);
        curvatures.push(curvature);
        h = a;
    }
    inputs.push(h.clone());
    let (w, b) = &layers[last];
    Pass {
        inputs,
        slopes,
        curvatures,
        out: add_task_bias(w.times(h), b.clone()),
    }
}

/// What a backward pass keeps for the Hessian-vector product: `δ_l` and `e_l`.
struct Backward<B: Backend> {
    deltas: Vec<Tensor<B, 3>>,
    /// `e_l = δ_{l+1} W_{l+1}` of each hidden layer (before `σ'`).
    errors: Vec<Tensor<B, 3>>,
}

/// The gradient of the loss whose `∂ℓ/∂z_L` is `delta`, per task or summed over tasks,
/// with what the Hessian-vector product at these weights needs.
fn backward<B: Backend>(
    layers: &[Weights<B>],
    pass: &Pass<B>,
    delta: Tensor<B, 3>,
    per_task: bool,
) -> (Vec<Weights<B>>, Backward<B>) {
    let count = layers.len();
    let mut grads = Vec::with_capacity(count);
    let mut deltas = Vec::with_capacity(count);
    let mut errors = Vec::with_capacity(count - 1);
    let mut delta = delta;
    for l in (0..count).rev() {
        let g_w = if per_task {
            Matrix::outer(&[(&pass.inputs[l], &delta)])
        } else {
            Matrix::Dense(outer(&pass.inputs[l], &delta, false))
        };
        grads.push((g_w, row_sum(&delta, per_task)));
        deltas.push(delta.clone());
        if l > 0 {
            let e = layers[l].0.times_transposed(delta);
            errors.push(e.clone());
            delta = e * pass.slopes[l - 1].clone();
        }
    }
    grads.reverse();
    deltas.reverse();
    errors.reverse();
    (grads, Backward { deltas, errors })
}

/// `H(θ) u`: the Hessian of the support loss at `layers` times the direction `u` (per
/// task), by the R-operator on the kept pass and backward pass; per task, or summed over
/// tasks.
fn hessian_product<B: Backend>(
    layers: &[Weights<B>],
    pass: &Pass<B>,
    back: &Backward<B>,
    u: &[Weights<B>],
    support: &Sets<B>,
    per_task: bool,
) -> Vec<Weights<B>> {
    let count = layers.len();
    // R-forward: R{z_l} = R{a_{l-1}} W_l^T + a_{l-1} U_l^T + U_b, R{a_l} = σ'(z_l) R{z_l}.
    let mut r_inputs: Vec<Option<Tensor<B, 3>>> = Vec::with_capacity(count);
    let mut r_pre = Vec::with_capacity(count - 1);
    let mut r_a: Option<Tensor<B, 3>> = None;
    let mut r_out = None;
    for l in 0..count {
        let mut rz = add_task_bias(u[l].0.times(pass.inputs[l].clone()), u[l].1.clone());
        if let Some(ra) = &r_a {
            rz = rz + layers[l].0.times(ra.clone());
        }
        r_inputs.push(r_a.take());
        if l + 1 == count {
            r_out = Some(rz);
        } else {
            r_a = Some(rz.clone() * pass.slopes[l].clone());
            r_pre.push(rz);
        }
    }
    let r_out = r_out.expect("an MLP has at least one layer (validated)");
    // R-backward: R{δ_L} = ∂²ℓ/∂z_L² R{z_L};
    // R{∇W_l^T} = R{a_{l-1}}^T δ_l + a_{l-1}^T R{δ_l}, R{∇b_l} = Σ_rows R{δ_l};
    // R{δ_{l-1}} = (R{δ_l} W_l + δ_l U_l) ⊙ σ' + e_{l-1} ⊙ σ'' ⊙ R{z_{l-1}}.
    let mut r_delta = support.loss_hessian_product(pass.out.clone(), r_out);
    let mut out = Vec::with_capacity(count);
    for l in (0..count).rev() {
        let mut pairs = vec![(&pass.inputs[l], &r_delta)];
        if let Some(ra) = &r_inputs[l] {
            pairs.push((ra, &back.deltas[l]));
        }
        let h_w = if per_task {
            Matrix::outer(&pairs)
        } else {
            Matrix::Dense(outer_sum(&pairs, false))
        };
        out.push((h_w, row_sum(&r_delta, per_task)));
        if l > 0 {
            let r_e = layers[l].0.times_transposed(r_delta)
                + u[l].0.times_transposed(back.deltas[l].clone());
            let mut next = r_e * pass.slopes[l - 1].clone();
            if let Some(curvature) = &pass.curvatures[l - 1] {
                next = next + back.errors[l - 1].clone() * curvature.clone() * r_pre[l - 1].clone();
            }
            r_delta = next;
        }
    }
    out.reverse();
    out
}

/// What [`meta_gradient`] returns, on `B`.
pub(crate) struct MlpMetaGradient<B: Backend> {
    /// Each task's query loss, `[tasks]`.
    pub query_losses: Tensor<B, 1>,
    /// d meta-loss / d initial weights, per layer, task axis 1.
    pub grads: Vec<Layer<B>>,
    /// d meta-loss / d step sizes (Meta-SGD), per layer, task axis 1.
    pub step_size_grads: Option<Vec<Layer<B>>>,
    /// Every task's fast weights, per layer, task axis `tasks` (when asked for).
    pub fast: Option<Vec<Layer<B>>>,
}

/// The meta-gradient of the mean query loss over `batch` with respect to the initial
/// weights `layers` (task axis 1; and Meta-SGD's step sizes `sizes`, same shapes), first
/// or second order as `config` says, and every task's fast weights when `keep_fast`.
/// See the module docs for the recursion.
///
/// Called on a worker thread of a rayon pool of several threads (the CPU backends'
/// `--threads` pool, `maml_burn::backend::on_cpu_pool`), the tasks are split into one
/// contiguous shard per thread, each shard's share computed on its own thread, and the
/// shares summed: the same result up to the order of floating-point summation. Anywhere
/// else (a plain thread, a GPU backend's dispatch) it runs on the calling thread.
pub(crate) fn meta_gradient<B: Backend>(
    layers: Vec<Layer<B>>,
    activation: Activation,
    sizes: Option<&[Layer<B>]>,
    batch: &MetaBatch<B>,
    config: &AdaptConfig,
    keep_fast: bool,
) -> MlpMetaGradient<B> {
    use rayon::prelude::*;
    let tasks = batch.tasks();
    let shards = match rayon::current_thread_index() {
        Some(_) => rayon::current_num_threads().min(tasks),
        None => 1,
    };
    if shards <= 1 {
        return shard_meta_gradient(layers, activation, sizes, batch, config, tasks, keep_fast);
    }
    let parts: Vec<MlpMetaGradient<B>> = (0..shards)
        .into_par_iter()
        .map(|rank| {
            let shard = batch.slice(crate::data::batch::shard_range(tasks, shards, rank));
            let layers = layers.clone();
            shard_meta_gradient(layers, activation, sizes, &shard, config, tasks, keep_fast)
        })
        .collect();
    let mut parts = parts.into_iter();
    let first = parts.next().expect("at least two shards");
    let mut query_losses = vec![first.query_losses];
    let mut fast = vec![first.fast];
    let mut grads = first.grads;
    let mut step_size_grads = first.step_size_grads;
    for part in parts {
        query_losses.push(part.query_losses);
        fast.push(part.fast);
        grads = sum_layers(grads, part.grads);
        step_size_grads = match (step_size_grads, part.step_size_grads) {
            (Some(a), Some(b)) => Some(sum_layers(a, b)),
            (a, b) => a.or(b),
        };
    }
    let fast: Option<Vec<Vec<Layer<B>>>> = fast.into_iter().collect();
    let fast = fast.map(|fast| {
        (0..grads.len())
            .map(|l| {
                let (w, b): (Vec<_>, Vec<_>) = fast.iter().map(|f| f[l].clone()).unzip();
                (Tensor::cat(w, 0), Tensor::cat(b, 0))
            })
            .collect()
    });
    MlpMetaGradient {
        query_losses: Tensor::cat(query_losses, 0),
        grads,
        step_size_grads,
        fast,
    }
}
