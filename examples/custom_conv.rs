//! Meta-learn your own conv net: a small Burn module of `maml_core::nn` layers, meta-trained
//! with exact second-order MAML on 3-way 1-shot Omniglot tasks with Burn's Adam, on the CPU
//! (ndarray). `cargo run --release --example custom_conv [-- DATA]`, where DATA is a folder
//! in the Omniglot layout (`ALPHABET/CHARACTER/*.png`) or a zip of one (default: the few
//! characters of the test data).
//!
//! `maml_core::nn` has the layers of `burn::nn` that MAML needs, written so that Burn 0.21
//! can differentiate them twice (`burn::nn::Linear`, the pooling layers and `BatchNorm`
//! cannot be). The module has no task axis, so the core runs it task by task: batch
//! norm's statistics are each task's own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn_ndarray::NdArray;
use maml_burn::maml_core::nn::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, GlobalAvgPool2d, Linear, LinearConfig,
    MaxPool2d, MaxPool2dConfig,
};
use maml_burn::maml_core::{
    AdaptConfig, Loss, MetaBatch, MetaModel, ModelLearner, Order, SecondOrder, TaskFamily,
};
use maml_burn::maml_data::few_shot::FewShotFamily;
use maml_burn::maml_data::images::ImageClasses;
use rand::SeedableRng;

/// Two blocks of 3x3 conv + batch norm + ReLU + 2x2 max pooling, the spatial mean, a head.
#[derive(Module, Debug)]
pub struct TinyConv<B: Backend> {
    convs: Vec<Conv2d<B>>,
    norms: Vec<BatchNorm<B>>,
    pool: MaxPool2d,
    mean: GlobalAvgPool2d,
    head: Linear<B>,
}

impl<B: Backend> TinyConv<B> {
    /// Burn's default initialisation; batch norm's γ = 1, β = 0.
    pub fn new(filters: usize, ways: usize, device: &B::Device) -> Self {
        let conv = |c| {
            Conv2dConfig::new([c, filters], [3, 3])
                .with_padding([1, 1])
                .init(device)
        };
        Self {
            convs: vec![conv(1), conv(filters)],
            norms: (0..2)
                .map(|_| BatchNormConfig::new(filters).init(device))
                .collect(),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            mean: GlobalAvgPool2d,
            head: LinearConfig::new(filters, ways).init(device),
        }
    }
}

impl<B: Backend> MetaModel<B> for TinyConv<B> {
    /// `x [tasks, n, 28·28] -> [tasks, n, ways]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [tasks, n, _] = x.dims();
        let mut h = x.reshape([tasks * n, 1, 28, 28]);
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = self.pool.forward(relu(norm.forward(conv.forward(h))));
        }
        let logits = self.head.forward(self.mean.forward(h)); // [n, ways]
        let ways = logits.dims()[1];
        logits.reshape([tasks, n, ways])
    }
}

fn run(data: PathBuf) -> Result<(), String> {
    type B = NdArray;
    let device = Default::default();
    let (ways, shots, queries) = (3, 1, 2);
    let classes = ImageClasses::load(&data, &[], true).map_err(|e| e.to_string())?;
    let family =
        FewShotFamily::new(Arc::new(classes), ways, shots, queries).map_err(|e| e.to_string())?;
    // The loss is named once, here; the outer update is Burn's Adam at 0.003.
    let adapt = AdaptConfig::new(0.4)
        .with_inner_steps(1)
        .with_order(Order::Second)
        .with_loss(Loss::CrossEntropy);
    B::seed(&device, 0);
    // Named at the top of the autodiff stack: `TinyConv<SecondOrder<B>>`.
    let mut learner = ModelLearner::<B, TinyConv<SecondOrder<B>>, _, _>::with_optimizer(
        TinyConv::new(16, ways, &device),
        adapt,
        AdamConfig::new().init(),
        0.003,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "meta-training TinyConv (2 conv blocks, 16 filters) on {ways}-way {shots}-shot tasks \
         of {}, second order",
        data.display()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for step in 0..=100 {
        let tasks = family.sample(8, &mut rng);
        let batch = MetaBatch::<B>::from_tasks(&tasks, ways, &device);
        if step % 20 == 0 {
            // Adapt to each task's support set, then predict its query set.
            let adapted = learner.adapt(&batch.support);
            let predictions = adapted.forward(batch.query.x.clone());
            let accuracy: f64 = batch
                .query
                .task_accuracies(predictions)
                .mean()
                .into_scalar()
                .elem();
            let loss: f64 = learner.meta_loss(&batch).loss.into_scalar().elem();
            println!(
                "meta step {step:>3}: meta-loss {loss:.4}, query accuracy after one step {:.0}%",
                100.0 * accuracy
            );
        }
        learner.step(&batch);
    }
    Ok(())
}

fn main() -> ExitCode {
    let data = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data-omniglot/images"),
        PathBuf::from,
    );
    match run(data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
