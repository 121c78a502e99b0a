//! Meta-learn your own Burn module: a small network defined here, with its own forward
//! pass, meta-trained with exact second-order MAML on the MAML paper's sinusoids, on the
//! CPU (ndarray), with Burn's Adam, through the library's `Trainer`: 300 meta steps, a
//! checkpoint, a stop, a resume into a new trainer, 300 more, and the adaptation curve on
//! fresh tasks before and after. `cargo run --release --example custom_model`.
//!
//! What a module needs: `#[derive(Module)]`, generic over `B: Backend`, and
//! [`MetaModel`]'s `forward` over a meta-batch, `x [tasks, n, in] -> [tasks, n, out]`,
//! written with twice-differentiable operations (`matmul`, `add`, activations; not
//! `burn::nn::Linear::forward`, whose fused op Burn 0.21 cannot differentiate twice).
//! This module keeps its parameters without a task axis, so the core runs it task by
//! task; the built-in `Mlp` shows the batched layout.

use std::process::ExitCode;

use burn::module::{Module, Param};
use burn::optim::AdamConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::tanh;
use burn_ndarray::NdArray;
use maml_burn::maml_core::data::families::SinusoidFamily;
use maml_burn::maml_core::{
    self, AdaptConfig, Loss, MamlError, MetaBackend, MetaModel, ModelLearner, Order, SecondOrder,
    TaskFamily, Trainer, TrainerConfig,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

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

/// Burn's Adam over `SineNet`'s initial weights (on the meta backend).
type Adam<B> = OptimizerAdaptor<burn::optim::Adam, SineNet<MetaBackend<B>>, MetaBackend<B>>;

/// A trainer of `SineNet` with Burn's Adam at 0.003, from weights drawn with `seed`.
fn sine_trainer<B: Backend>(
    seed: u64,
    device: &B::Device,
) -> maml_core::Result<Trainer<B, SineNet<SecondOrder<B>>, Adam<B>>> {
    // The loss is named once, here.
    let adapt = AdaptConfig::new(0.01)
        .with_inner_steps(1)
        .with_order(Order::Second)
        .with_loss(Loss::Mse);
    B::seed(device, seed);
    // Named at the top of the autodiff stack: `SineNet<SecondOrder<B>>`.
    let learner = ModelLearner::<B, SineNet<SecondOrder<B>>, _, _>::with_optimizer(
        SineNet::new(32, device),
        adapt,
        AdamConfig::new().init(),
        0.003,
    )?;
    let family = Box::new(SinusoidFamily::default());
    Trainer::new(learner, family, TrainerConfig::new(10), device)
}

fn run<B: Backend>(device: &B::Device) -> maml_core::Result<()> {
    let eval_tasks = SinusoidFamily::default().sample(100, &mut StdRng::seed_from_u64(1));
    let checkpoint = std::env::temp_dir().join(format!("maml-custom-model-{}", std::process::id()));
    let mut trainer = sine_trainer::<B>(0, device)?;
    let before = trainer.evaluate(&eval_tasks, 5)?;
    println!("meta-training SineNet (1-32-1 tanh, task by task) on sinusoids, second order");
    for _ in 0..300 {
        let metrics = trainer.step()?;
        if metrics.step % 100 == 0 {
            println!(
                "meta step {:>4}: meta-loss {:.4}",
                metrics.step, metrics.meta_loss
            );
        }
    }
    trainer.save(&checkpoint)?;
    println!("checkpoint saved in {}; stopping", checkpoint.display());
    drop(trainer);

    // A new process would do the same: build the trainer, then resume from the folder
    // (weights, Adam's moments, the step).
    let mut trainer = sine_trainer::<B>(1, device)?.resume(&checkpoint)?;
    println!("resumed at meta step {}", trainer.step_index());
    while trainer.step_index() <= 600 {
        let metrics = trainer.step()?;
        if metrics.step % 100 == 0 {
            println!(
                "meta step {:>4}: meta-loss {:.4}",
                metrics.step, metrics.meta_loss
            );
        }
    }
    let after = trainer.evaluate(&eval_tasks, 5)?;
    println!("mean query MSE on 100 fresh tasks after k inner steps of 0.01:");
    println!("  k   before meta-training   after");
    for (k, (b, a)) in before.curve.iter().zip(&after.curve).enumerate() {
        println!("{k:>3}   {b:>20.4}   {a:>7.4}");
    }
    std::fs::remove_dir_all(&checkpoint).map_err(|e| MamlError::io("cannot remove", &checkpoint, e))
}

fn main() -> ExitCode {
    match run::<NdArray>(&Default::default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
