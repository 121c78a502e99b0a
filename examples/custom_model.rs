//! Meta-learn your own Burn module: a small network defined here, with its own forward
//! pass, meta-trained with exact second-order MAML on the MAML paper's sinusoids, on the
//! CPU (ndarray). `cargo run --release --example custom_model`.
//!
//! What a module needs: `#[derive(Module)]`, generic over `B: Backend`, and
//! [`MetaModel`]'s `forward` over a meta-batch, `x [tasks, n, in] -> [tasks, n, out]`,
//! written with twice-differentiable operations (`matmul`, `add`, activations; not
//! `burn::nn::Linear::forward`, whose fused op Burn 0.21 cannot differentiate twice).
//! This module keeps its parameters without a task axis, so the core runs it task by
//! task; the built-in `Mlp` shows the batched layout.

use std::process::ExitCode;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::tanh;
use maml_burn::backend::{Cpu, on_cpu_pool};
use maml_burn::emit;
use maml_burn::maml_core::{
    AdaptConfig, Loss, MetaBatch, MetaConfig, MetaModel, MetaOptimizer, ModelLearner, Order,
    SecondOrder, SinusoidFamily, TaskFamily, model_adaptation_curve,
};
use rand::SeedableRng;

/// `y = tanh(x W1 + b1) W2 + b2`, with its parameters as plain matrices.
#[derive(Module, Debug)]
pub struct SineNet<B: Backend> {
    /// `[1, hidden]`.
    w1: Param<Tensor<B, 2>>,
    /// `[hidden]`.
    b1: Param<Tensor<B, 1>>,
    /// `[hidden, 1]`.
    w2: Param<Tensor<B, 2>>,
    /// `[1]`.
    b2: Param<Tensor<B, 1>>,
}

impl<B: Backend> SineNet<B> {
    /// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, as PyTorch's default.
    pub fn new(hidden: usize, device: &B::Device) -> Self {
        let uniform = |bound: f64| Distribution::Uniform(-bound, bound);
        let h = 1.0 / (hidden as f64).sqrt();
        Self {
            w1: Param::from_tensor(Tensor::random([1, hidden], uniform(1.0), device)),
            b1: Param::from_tensor(Tensor::random([hidden], uniform(1.0), device)),
            w2: Param::from_tensor(Tensor::random([hidden, 1], uniform(h), device)),
            b2: Param::from_tensor(Tensor::random([1], uniform(h), device)),
        }
    }
}

impl<B: Backend> MetaModel<B> for SineNet<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        // [tasks, n, 1] x [1, 1, hidden] (broadcast over tasks) -> [tasks, n, hidden].
        let h = tanh(x.matmul(self.w1.val().unsqueeze()) + self.b1.val().unsqueeze());
        h.matmul(self.w2.val().unsqueeze()) + self.b2.val().unsqueeze()
    }
}

fn run<B: Backend>(device: &B::Device) -> ExitCode {
    let family = SinusoidFamily::default();
    let adapt = AdaptConfig::new(0.01)
        .with_inner_steps(1)
        .with_order(Order::Second)
        .with_loss(Loss::Mse);
    let config = MetaConfig::new(adapt.clone())
        .with_meta_lr(0.003)
        .with_meta_optimizer(MetaOptimizer::Adam);
    B::seed(device, 0);
    // The learner is named at the top of the autodiff stack: `SineNet<SecondOrder<B>>`.
    let learner = ModelLearner::<B, SineNet<SecondOrder<B>>>::new(SineNet::new(32, device), config);
    let mut learner = match learner {
        Ok(learner) => learner,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let eval_tasks = family.sample(100, &mut rng);
    let eval = MetaBatch::<B>::from_tasks(&eval_tasks, 1, device);
    let curve_adapt = adapt.clone().with_inner_steps(5);
    let before = model_adaptation_curve::<B, SineNet<SecondOrder<B>>>(
        learner.model(),
        None,
        &eval,
        &curve_adapt,
    );
    emit("meta-training SineNet (1-32-1 tanh, task by task) on sinusoids, second order");
    for step in 0..=600 {
        let tasks = family.sample(10, &mut rng);
        let batch = MetaBatch::<B>::from_tasks(&tasks, 1, device);
        let gradient = learner.step(&batch);
        if step % 100 == 0 {
            let loss: f64 = gradient.meta_loss.into_scalar().elem();
            emit(&format!("meta step {step:>4}: meta-loss {loss:.4}"));
        }
    }
    let after = model_adaptation_curve::<B, SineNet<SecondOrder<B>>>(
        learner.model(),
        None,
        &eval,
        &curve_adapt,
    );
    emit("mean query MSE on 100 fresh tasks after k inner steps of 0.01:");
    emit("  k   before meta-training   after");
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        emit(&format!("{k:>3}   {b:>20.4}   {a:>7.4}"));
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    // On a pool's worker thread ndarray runs its operations in place (`on_cpu_pool`).
    on_cpu_pool(1, || run::<Cpu>(&Default::default())).unwrap_or_else(|err| {
        eprintln!("error: {err}");
        ExitCode::FAILURE
    })
}
