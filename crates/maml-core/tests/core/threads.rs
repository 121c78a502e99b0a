//! Meta-learners on several threads of one process (two trainers, a trainer and an
//! evaluation, the data-parallel workers of `maml train --workers`): each thread's
//! meta-gradients equal those computed alone. Burn 0.21's autodiff shares its graph
//! bookkeeping between threads, and a `backward()` on one thread may clean up steps that
//! another is building from a reused leaf (tracel-ai/burn#5573); every meta-gradient
//! here starts from fresh leaves.

use burn::module::Param;
use burn::prelude::*;
use burn_ndarray::NdArray;
use maml_core::data::families::SinusoidFamily;
use maml_core::nn::LinearConfig;
use maml_core::{AdaptConfig, Loss, MetaBatch, ModelLearner, SecondOrder, TaskFamily};

use crate::trainer::SineNet;
use rand::SeedableRng;

type Cpu = NdArray<f32>;

/// The meta-gradient's entries (hidden and output weights) of 8 meta-batches, each by the
/// unrolled second-order road and by `meta_loss().backward()`.
fn gradients(net: &SineNet<Cpu>) -> Vec<f32> {
    let device = Default::default();
    let adapt = AdaptConfig::new(0.01)
        .with_loss(Loss::Mse)
        .with_inner_steps(2);
    let learner = ModelLearner::<Cpu, SineNet<SecondOrder<Cpu>>, _, _>::with_optimizer(
        net.clone(),
        adapt,
        burn::optim::SgdConfig::new().init(),
        0.0,
    )
    .expect("a valid configuration");
    let family = SinusoidFamily::default();
    let mut out = Vec::new();
    for seed in 0..8 {
        let tasks = family.sample(4, &mut rand::rngs::StdRng::seed_from_u64(seed));
        let batch = MetaBatch::<Cpu>::from_tasks(&tasks, 1, &device);
        let by_step = learner.meta_gradient(&batch);
        let by_loss = learner.meta_loss(&batch).backward();
        for gradient in [by_step, by_loss] {
            let model = learner.model();
            for id in [model.hidden.weight.id, model.out.weight.id] {
                let g = gradient
                    .grads
                    .get::<Cpu, 2>(id)
                    .expect("every weight has a meta-gradient");
                out.extend(g.into_data().to_vec::<f32>().expect("f32 data"));
            }
        }
    }
    out
}

#[test]
fn threads_get_the_meta_gradients_of_a_single_thread() {
    let device = Default::default();
    // Fixed weights: Burn draws a parameter lazily, and each clone of an unused one
    // would draw its own.
    let weights = |d_in: usize, d_out: usize, scale: f32| {
        let values: Vec<f32> = (0..d_in * d_out)
            .map(|i| scale * ((i * 37 % 23) as f32 / 11.0 - 1.0))
            .collect();
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, [d_in, d_out]),
            &device,
        ))
    };
    let mut hidden = LinearConfig::new(1, 32).init(&device);
    hidden.weight = weights(1, 32, 1.0);
    hidden.bias = Some(Param::from_tensor(Tensor::zeros([32], &device)));
    let mut out = LinearConfig::new(32, 1).init(&device);
    out.weight = weights(32, 1, 0.3);
    out.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
    let net = SineNet::<Cpu> { hidden, out };
    let alone = gradients(&net);
    assert!(alone == gradients(&net), "two runs on one thread agree");
    let threads: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| gradients(&net))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for (t, got) in threads.iter().enumerate() {
        assert_eq!(
            got.len(),
            alone.len(),
            "thread {t}: a gradient went missing"
        );
        let diff = got
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff == 0.0,
            "thread {t} differs from a single thread by {diff}"
        );
    }
}
