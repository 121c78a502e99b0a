//! Meta-learn your own conv net: a small Burn module defined here, meta-trained with
//! exact second-order MAML on 3-way 1-shot Omniglot tasks, on the CPU (ndarray).
//! `cargo run --release --example custom_conv [-- DATA]`, where DATA is a folder in the
//! Omniglot layout (`ALPHABET/CHARACTER/*.png`) or a zip of one (default: the few
//! characters of the test data).
//!
//! Every operation must be twice differentiable on Burn 0.21 (see docs/design.md):
//! `burn::tensor::module::conv2d` is, batch norm is written on the batch's statistics,
//! the head is `matmul` + `add` (not `nn::Linear`), no pooling op (a stride-2 conv
//! instead). The module has no task axis, so the core runs it task by task: the batch
//! statistics are each task's own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use maml_burn::backend::{Cpu, on_cpu_pool};
use maml_burn::emit;
use maml_burn::maml_core::train::trainer::step_rng;
use maml_burn::maml_core::{
    AdaptConfig, FewShotFamily, ImageClasses, Loss, MetaBatch, MetaConfig, MetaModel,
    MetaOptimizer, ModelLearner, Order, SecondOrder, TaskFamily,
};

/// Two blocks of 3x3 conv (stride 2) + batch norm + ReLU, the spatial mean, a head.
#[derive(Module, Debug)]
pub struct TinyConv<B: Backend> {
    /// `[F, 1, 3, 3]` and `[F, F, 3, 3]`.
    kernels: Vec<Param<Tensor<B, 4>>>,
    /// γ of each block, `[F]`.
    gammas: Vec<Param<Tensor<B, 1>>>,
    /// β of each block, `[F]`.
    betas: Vec<Param<Tensor<B, 1>>>,
    /// `[F, ways]`.
    head: Param<Tensor<B, 2>>,
    /// `[ways]`.
    bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> TinyConv<B> {
    /// He-normal kernels, γ = 1, β = 0, a uniform head.
    pub fn new(filters: usize, ways: usize, device: &B::Device) -> Self {
        let normal = |fan_in: usize| Distribution::Normal(0.0, (2.0 / fan_in as f64).sqrt());
        let kernels = [1, filters]
            .map(|c| Param::from_tensor(Tensor::random([filters, c, 3, 3], normal(c * 9), device)))
            .to_vec();
        let ones = || Param::from_tensor(Tensor::ones([filters], device));
        let zeros = || Param::from_tensor(Tensor::zeros([filters], device));
        let bound = 1.0 / (filters as f64).sqrt();
        Self {
            kernels,
            gammas: vec![ones(), ones()],
            betas: vec![zeros(), zeros()],
            head: Param::from_tensor(Tensor::random(
                [filters, ways],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            bias: Param::from_tensor(Tensor::zeros([ways], device)),
        }
    }
}

/// `(x - mean) / sqrt(var + 1e-5) · γ + β` per channel of `x [n, C, H, W]`.
fn batch_norm<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
) -> Tensor<B, 4> {
    let [_, c, _, _] = x.dims();
    let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3);
    let centred = x - mean;
    let var = centred
        .clone()
        .powi_scalar(2)
        .mean_dim(0)
        .mean_dim(2)
        .mean_dim(3);
    let normed = centred / var.add_scalar(1e-5).sqrt();
    normed * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1])
}

impl<B: Backend> MetaModel<B> for TinyConv<B> {
    /// `x [tasks, n, 28·28] -> [tasks, n, ways]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [tasks, n, _] = x.dims();
        let mut h = x.reshape([tasks * n, 1, 28, 28]);
        for ((kernel, gamma), beta) in self.kernels.iter().zip(&self.gammas).zip(&self.betas) {
            let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
            h = conv2d(h, kernel.val(), None, options);
            h = relu(batch_norm(h, gamma.val(), beta.val()));
        }
        let [_, filters, _, _] = h.dims();
        let features = h.mean_dim(2).mean_dim(3).reshape([tasks * n, filters]);
        let logits = features.matmul(self.head.val()) + self.bias.val().unsqueeze();
        let ways = self.bias.dims()[0];
        logits.reshape([tasks, n, ways])
    }
}

fn run<B: Backend>(data: PathBuf, device: &B::Device) -> Result<(), String> {
    let (ways, shots, queries) = (3, 1, 2);
    let classes = ImageClasses::load(&data, &[], true).map_err(|e| e.to_string())?;
    let family =
        FewShotFamily::new(Arc::new(classes), ways, shots, queries).map_err(|e| e.to_string())?;
    let adapt = AdaptConfig::new(0.4)
        .with_inner_steps(1)
        .with_order(Order::Second)
        .with_loss(Loss::CrossEntropy);
    let config = MetaConfig::new(adapt)
        .with_meta_lr(0.003)
        .with_meta_optimizer(MetaOptimizer::Adam);
    B::seed(device, 0);
    // The learner is named at the top of the autodiff stack: `TinyConv<SecondOrder<B>>`.
    let mut learner =
        ModelLearner::<B, TinyConv<SecondOrder<B>>>::new(TinyConv::new(16, ways, device), config)
            .map_err(|e| e.to_string())?;
    emit(&format!(
        "meta-training TinyConv (2 conv blocks, 16 filters) on {ways}-way {shots}-shot tasks \
         of {}, second order",
        data.display()
    ));
    for step in 0..=100 {
        let tasks = family.sample(8, &mut step_rng(0, step));
        let batch = MetaBatch::<B>::from_tasks(&tasks, ways, Loss::CrossEntropy, device);
        let mut gradient = learner.meta_gradient(&batch);
        let fast = gradient
            .fast
            .take()
            .expect("meta_gradient keeps the fast weights");
        let accuracy = maml_burn::maml_core::query_accuracies(&fast, &batch.query).mean();
        learner.apply(&mut gradient);
        if step % 20 == 0 {
            let loss: f64 = gradient.meta_loss.into_scalar().elem();
            let accuracy: f64 = accuracy.into_scalar().elem();
            emit(&format!(
                "meta step {step:>3}: meta-loss {loss:.4}, query accuracy after one step {:.0}%",
                100.0 * accuracy
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let data = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data-omniglot/images"),
        PathBuf::from,
    );
    match on_cpu_pool(1, || run::<Cpu>(data, &Default::default())) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
