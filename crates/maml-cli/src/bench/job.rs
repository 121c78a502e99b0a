//! The timed loop of `maml bench`: the configuration's model, learner and tasks on the
//! chosen backend, meta steps for the requested seconds, and the heap each one used.

use std::time::Instant;

use burn::prelude::Backend;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::families::LinearFamily;
use maml_burn::maml_core::data::families::SeedFamily;
use maml_burn::maml_core::model::mlp::Activation;
use maml_burn::maml_core::model::mlp::Mlp;
use maml_burn::maml_core::model::mlp::MlpWeights;
use maml_burn::maml_core::{
    GradientPath, MetaBatch, MetaConfig, ModelLearner, SecondOrder, TaskFamily,
};

use super::BenchConfig;
use crate::error::CliError;

/// One benchmark, as dispatched to a backend.
pub(super) struct BenchJob {
    pub(super) width: usize,
    pub(super) gradient: GradientPath,
    pub(super) rng: rand::rngs::SmallRng,
    pub(super) config: BenchConfig,
    pub(super) family: LinearFamily,
    pub(super) tasks: usize,
    pub(super) meta: MetaConfig,
    pub(super) seconds: f64,
    /// Sets of γ and β of every batch norm (MAML++'s per-step batch norm); `None`: one.
    pub(super) per_step_bn: Option<usize>,
}

impl BenchJob {
    fn batch<B: Backend>(&mut self, device: &B::Device) -> MetaBatch<B> {
        match self.config {
            BenchConfig::Linreg16 => {
                self.family
                    .sample_batch::<B, _>(self.tasks, &mut self.rng, device)
            }
            BenchConfig::Sinusoid | BenchConfig::OmniglotConv => {
                unreachable!("run_sinusoid and run_omniglot make their own tasks")
            }
            BenchConfig::Seed => {
                // The same task every step: built once (see `run`).
                let tasks = SeedFamily.sample(1, &mut rand_rng());
                MetaBatch::from_tasks(&tasks, 1, device)
            }
        }
    }
}

impl BenchJob {
    /// The sinusoid configuration: tasks sampled on the host every step, as in training.
    fn run_sinusoid<B: Backend>(
        self,
        device: &B::Device,
    ) -> Result<(usize, f64, String, usize), CliError> {
        use maml_burn::maml_core::data::families::SinusoidFamily;
        let family = SinusoidFamily::default();
        let weights = MlpWeights::uniform_fan_in(&[1, self.width, self.width, 1], 0);
        let model = Mlp::<B>::from_weights(&weights, Activation::Relu, device);
        let mut learner = ModelLearner::<B, Mlp<SecondOrder<B>>>::new(model, self.meta.clone())?
            .with_gradient_path(self.gradient);
        let mut rng = rand_rng();
        let tasks = self.tasks;
        let (steps, seconds, heap) = timed::<B>(self.seconds, device, || {
            let batch = MetaBatch::<B>::from_tasks(&family.sample(tasks, &mut rng), 1, device);
            let base = crate::alloc::HEAP.live();
            crate::alloc::HEAP.reset_peak();
            learner.step(&batch);
            crate::alloc::HEAP.peak().saturating_sub(base)
        })?;
        let w = learner.model().to_weights(0);
        if !w.max_abs().is_finite() {
            return Err(CliError::Usage(
                "the benchmark's weights became non-finite; lower the learning rates".into(),
            ));
        }
        Ok((steps, seconds, B::name(device), heap))
    }
}

impl BenchJob {
    /// The Omniglot configuration: one meta-batch of random images, reused every step
    /// (as the peers do).
    fn run_omniglot<B: Backend>(
        self,
        device: &B::Device,
    ) -> Result<(usize, f64, String, usize), CliError> {
        use maml_burn::maml_core::model::layered::Layered;
        use maml_burn::maml_core::model::presets::ConvNet;
        use maml_burn::maml_core::model::presets::ConvNetConfig;
        use maml_burn::maml_core::{SetData, TaskData};
        use rand::Rng;
        let (ways, shots, queries) = (5, 1, 1);
        let spec = ConvNetConfig::new(ConvNet::Conv4)
            .with_filters(Some(self.width))
            .with_per_step_bn(self.per_step_bn)
            .spec([1, 28, 28], ways, 0)?;
        let model = Layered::<B>::from_spec(&spec, device)?;
        let mut learner =
            ModelLearner::<B, Layered<SecondOrder<B>>>::new(model, self.meta.clone())?
                .with_gradient_path(self.gradient);
        let mut rng = rand_rng();
        let mut set = |per_class: usize| SetData {
            x: (0..ways * per_class)
                .map(|_| (0..28 * 28).map(|_| rng.random::<f64>()).collect())
                .collect(),
            y: Some(
                (0..ways * per_class)
                    .map(|i| {
                        (0..ways)
                            .map(|c| f64::from(u8::from(c == i / per_class)))
                            .collect()
                    })
                    .collect(),
            ),
        };
        let tasks: Vec<TaskData> = (0..self.tasks)
            .map(|_| TaskData {
                support: set(shots),
                query: set(queries),
            })
            .collect();
        let batch = MetaBatch::<B>::from_tasks(&tasks, ways, device);
        let (steps, seconds, heap) = timed::<B>(self.seconds, device, || {
            let base = crate::alloc::HEAP.live();
            crate::alloc::HEAP.reset_peak();
            learner.step(&batch);
            crate::alloc::HEAP.peak().saturating_sub(base)
        })?;
        Ok((steps, seconds, B::name(device), heap))
    }
}

/// Runs `step` for `seconds` after a warm-up of at least one step, syncing the device
/// every 10 steps, or after every step when one takes over 50 ms (a slow configuration
/// then costs about `seconds` and two steps, not fifteen):
/// `(steps, seconds, the largest heap a step reported)`.
fn timed<B: Backend>(
    seconds: f64,
    device: &B::Device,
    mut step: impl FnMut() -> usize,
) -> Result<(usize, f64, usize), CliError> {
    let sync = || B::sync(device).map_err(|e| CliError::Usage(format!("device error: {e:?}")));
    let warm = Instant::now();
    let mut heap = step();
    sync()?;
    let chunk = if warm.elapsed().as_secs_f64() > 0.05 {
        1
    } else {
        10
    };
    while warm.elapsed().as_secs_f64() < (seconds / 4.0).min(1.0) {
        for _ in 0..chunk.min(5) {
            heap = heap.max(step());
        }
        sync()?;
    }
    let start = Instant::now();
    let mut steps = 0;
    loop {
        for _ in 0..chunk {
            heap = heap.max(step());
        }
        steps += chunk;
        sync()?;
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    Ok((steps, start.elapsed().as_secs_f64(), heap))
}

fn rand_rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

impl BackendJob for BenchJob {
    type Output = (usize, f64, String, usize);
    type Error = CliError;
    fn run<B: Backend>(mut self, device: &B::Device) -> Result<Self::Output, CliError> {
        let (d_in, d_out) = match self.config {
            BenchConfig::Linreg16 => (self.family.d_in, self.family.d_out),
            BenchConfig::Seed => (1, 1),
            BenchConfig::Sinusoid => return self.run_sinusoid::<B>(device),
            BenchConfig::OmniglotConv => return self.run_omniglot::<B>(device),
        };
        // The linear model: an MLP of one layer (its hand-derived road is the affine one).
        let init = MlpWeights {
            layers: vec![LinearWeights::kaiming(d_in, d_out, 0)],
        };
        let model = Mlp::<B>::from_weights(&init, Activation::Relu, device);
        let mut learner = ModelLearner::<B, Mlp<SecondOrder<B>>>::new(model, self.meta.clone())?
            .with_gradient_path(self.gradient);
        let fixed = (self.config == BenchConfig::Seed).then(|| self.batch::<B>(device));
        let seconds = self.seconds;
        let (steps, seconds, heap) = timed::<B>(seconds, device, || {
            let sampled;
            let batch = match &fixed {
                Some(batch) => batch,
                None => {
                    sampled = self.batch::<B>(device);
                    &sampled
                }
            };
            // The heap of the meta step alone: above what is live with its batch ready.
            let base = crate::alloc::HEAP.live();
            crate::alloc::HEAP.reset_peak();
            learner.step(batch);
            crate::alloc::HEAP.peak().saturating_sub(base)
        })?;
        let w = learner.model().to_weights(0);
        if !w.max_abs().is_finite() {
            return Err(CliError::Usage(
                "the benchmark's weights became non-finite; lower the learning rates".into(),
            ));
        }
        Ok((steps, seconds, B::name(device), heap))
    }
}

/// Peak resident memory of this process (Linux: `VmHWM` of /proc/self/status).
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
