//! Meta-training: determinism, the meta-optimisers, divergence.

use burn::prelude::Backend;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::families::LinearFamily;
use maml_burn::maml_core::{AdaptConfig, Loss, MamlError, MetaConfig, MetaOptimizer};
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::run::TrainConfig;

use crate::common::{linear_trainer, linear_weights};

fn linear_config(optimizer: MetaOptimizer, meta_lr: f64, steps: usize) -> TrainConfig {
    let family = LinearFamily {
        d_in: 4,
        d_out: 2,
        coef_mean: 1.0,
        coef_std: 0.3,
        ..LinearFamily::default()
    };
    let meta = MetaConfig::new(
        AdaptConfig::new(0.1)
            .with_inner_steps(3)
            .with_loss(Loss::Mse),
    )
    .with_meta_lr(meta_lr)
    .with_meta_optimizer(optimizer);
    TrainConfig::new(meta, TaskSource::Linear(family))
        .with_meta_batch(8)
        .with_meta_steps(steps)
        .with_seed(42)
}

fn run<B: Backend>(config: &TrainConfig, device: &B::Device) -> (Vec<f64>, LinearWeights) {
    let mut trainer = linear_trainer::<B>(config.clone(), None, device);
    let losses = (0..config.meta_steps)
        .map(|_| trainer.step().unwrap().meta_loss)
        .collect();
    (losses, linear_weights(&trainer))
}

/// Same seed, same backend: the same meta-losses and weights, bit for bit.
fn same_seed_gives_the_same_numbers<B: Backend>(device: &B::Device) {
    let config = linear_config(MetaOptimizer::Adam, 0.05, 15);
    let (a, wa) = run::<B>(&config, device);
    let (b, wb) = run::<B>(&config, device);
    assert_eq!(a, b);
    assert_eq!(wa, wb);
}

/// Both meta-optimisers learn: on tasks whose coefficients cluster around 1, the
/// meta-loss of the last 10 steps is well below that of the first 10 (random init).
fn sgd_and_adam_reduce_the_meta_loss<B: Backend>(device: &B::Device) {
    for (optimizer, lr) in [(MetaOptimizer::Sgd, 0.05), (MetaOptimizer::Adam, 0.05)] {
        let (losses, _) = run::<B>(&linear_config(optimizer, lr, 150), device);
        let first: f64 = losses[..10].iter().sum();
        let last: f64 = losses[losses.len() - 10..].iter().sum();
        assert!(last < 0.5 * first, "{optimizer}: {first} -> {last}");
    }
}

/// The seed's task with inner_lr = meta_lr = 1 blows up geometrically (|w0| grows about
/// 17-fold per step: -1.93 -> -32.9 -> ...): training stops with `Diverged`, naming the
/// step, instead of producing NaN weights.
fn divergence_is_caught_and_names_the_step<B: Backend>(device: &B::Device) {
    let meta = MetaConfig::new(AdaptConfig::new(1.0)).with_meta_lr(1.0);
    let config = TrainConfig::new(meta, TaskSource::Seed)
        .with_meta_batch(1)
        .with_meta_steps(1000);
    let init = LinearWeights::from_flat(&[-1.9347891807556152], &[0.0], 1);
    let mut trainer = linear_trainer::<B>(config, Some(init), device);
    let err = (0..1000)
        .find_map(|_| trainer.step().err())
        .expect("training must diverge");
    match &err {
        MamlError::Diverged { step, .. } => assert!(*step > 3 && *step < 400, "step {step}"),
        other => panic!("expected Diverged, got {other}"),
    }
    assert!(err.to_string().contains("smaller learning rate"), "{err}");
}

crate::backend_tests!(
    same_seed_gives_the_same_numbers,
    sgd_and_adam_reduce_the_meta_loss,
    divergence_is_caught_and_names_the_step,
);
