//! `maml bench`: meta-steps per second and peak memory of one configuration.

use std::time::Instant;

use burn::prelude::Backend;
use clap::{Args, ValueEnum};
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::families::LinearFamily;
use maml_burn::maml_core::data::families::SeedFamily;
use maml_burn::maml_core::model::mlp::Activation;
use maml_burn::maml_core::model::mlp::Mlp;
use maml_burn::maml_core::model::mlp::MlpWeights;
use maml_burn::maml_core::{
    AdaptConfig, GradientPath, Loss, MetaBatch, MetaConfig, ModelLearner, Order, SecondOrder,
    TaskFamily,
};
use serde::Serialize;

use crate::error::CliError;
use crate::train_args::FamilyDefaults;
use crate::{BackendArgs, parse, print_json};

/// Benchmark configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchConfig {
    /// in 16, out 1, 25 tasks, 10 support / 15 query shots, 5 inner steps, inner lr 0.01,
    /// SGD meta lr 0.001, mse, fresh tasks every step (a ~ N(0, I), c ~ N(0, 1)): the
    /// peers' default.
    #[value(name = "linreg-16")]
    Linreg16,
    /// The seed's 1x1 task: one task, one inner step (inner lr 1, sse), meta lr 0.001.
    Seed,
    /// The MAML paper's sinusoid setting on the model-agnostic core: MLP 1-40-40-1 ReLU
    /// (`--width` changes the hidden width), K = 10 support and 10 query points, 25
    /// tasks, one inner step of 0.01, Adam 0.001, fresh tasks every step.
    Sinusoid,
    /// The MAML paper's Omniglot network (conv4: 4 blocks of 3x3 conv with stride 2,
    /// batch norm, ReLU; spatial mean; linear head; `--filters`, default 64) on 5-way
    /// 1-shot tasks of random 28x28 images, one query per class, 32 tasks, one inner step
    /// of 0.4, Adam 0.001: the peers' `peer_*_omniglot.py --steps` setting.
    #[value(name = "omniglot-conv")]
    OmniglotConv,
}

/// `maml bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The configuration.
    #[arg(long, value_enum, default_value = "linreg-16")]
    pub config: BenchConfig,
    /// first or second.
    #[arg(long, default_value = "second", value_parser = parse::<Order>)]
    pub order: Order,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Seconds to measure, after a warm-up.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Override the input dimension (linreg-16 only; for scaling tables).
    #[arg(long = "in")]
    pub d_in: Option<usize>,
    /// Override the number of tasks per meta-batch (linreg-16, sinusoid, omniglot-conv).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Override the number of inner steps.
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Hidden width of the sinusoid MLP (both layers; default 40).
    #[arg(long)]
    pub width: Option<usize>,
    /// Filters of every conv layer of omniglot-conv (default 64).
    #[arg(long)]
    pub filters: Option<usize>,
    /// How the meta-gradient is taken: `auto` (hand-derived: the linear model's affine
    /// inner steps, the MLP's back-propagation with exact Hessian-vector products; the
    /// default) or `autodiff` (nested autodiff, the path every other model takes).
    #[arg(long, default_value = "auto", value_parser = parse::<GradientPath>)]
    pub gradient: GradientPath,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub algorithm: crate::train_args::AlgorithmArgs,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub family_parts: crate::family_args::FamilyArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    config: String,
    order: String,
    /// maml or imaml.
    algorithm: String,
    /// Inner steps between two kept fast weights (`--inner-checkpoint-every`).
    #[serde(skip_serializing_if = "Option::is_none")]
    inner_checkpoint_every: Option<usize>,
    backend: String,
    precision: String,
    d_in: usize,
    /// Hidden width of the sinusoid MLP, or filters of the conv net.
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<usize>,
    /// How the meta-gradient is taken.
    gradient: String,
    tasks: usize,
    inner_steps: usize,
    meta_steps: usize,
    seconds: f64,
    meta_steps_per_s: f64,
    ms_per_meta_step: f64,
    peak_rss_bytes: Option<u64>,
    /// Peak live heap during the measured steps, above what was live before them: the
    /// memory of one meta step (its graph and tensors), to the byte. CPU backends only
    /// (a GPU's memory is not on this heap).
    meta_step_heap_bytes: usize,
    device: String,
}

struct BenchJob {
    width: usize,
    gradient: GradientPath,
    rng: rand::rngs::SmallRng,
    config: BenchConfig,
    family: LinearFamily,
    tasks: usize,
    meta: MetaConfig,
    seconds: f64,
    /// Sets of γ and β of every batch norm (MAML++'s per-step batch norm); `None`: one.
    per_step_bn: Option<usize>,
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
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `maml bench`.
pub fn bench(args: BenchArgs) -> Result<(), CliError> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(CliError::Usage(format!(
            "invalid --seconds {}: must be a positive number",
            args.seconds
        )));
    }
    let (family, tasks, adapt, meta_lr) = match args.config {
        BenchConfig::Linreg16 => {
            let family = LinearFamily {
                d_in: args.d_in.unwrap_or(16),
                noise: 0.0,
                ..LinearFamily::default()
            };
            let adapt = AdaptConfig::new(0.01)
                .with_inner_steps(args.inner_steps.unwrap_or(5))
                .with_loss(Loss::Mse);
            (family, args.tasks.unwrap_or(25), adapt, 0.001)
        }
        BenchConfig::Seed => {
            let adapt = AdaptConfig::new(1.0)
                .with_inner_steps(args.inner_steps.unwrap_or(1))
                .with_loss(Loss::Sse);
            (LinearFamily::default(), 1, adapt, 0.001)
        }
        BenchConfig::Sinusoid => {
            let paper = FamilyDefaults::SINUSOID_PAPER;
            let adapt = AdaptConfig::new(paper.inner_lr)
                .with_inner_steps(args.inner_steps.unwrap_or(paper.inner_steps))
                .with_loss(Loss::Mse);
            let family = LinearFamily {
                d_in: 1,
                ..LinearFamily::default()
            };
            (family, args.tasks.unwrap_or(25), adapt, paper.meta_lr)
        }
        BenchConfig::OmniglotConv => {
            let paper = crate::train_args::FamilyDefaults::OMNIGLOT_PAPER;
            let adapt = AdaptConfig::new(paper.inner_lr)
                .with_inner_steps(args.inner_steps.unwrap_or(paper.inner_steps))
                .with_loss(Loss::CrossEntropy);
            let family = LinearFamily {
                d_in: 28 * 28,
                ..LinearFamily::default()
            };
            (family, args.tasks.unwrap_or(32), adapt, paper.meta_lr)
        }
    };
    let width = match args.config {
        BenchConfig::OmniglotConv => args.filters.unwrap_or(64),
        _ => args.width.unwrap_or(40),
    };
    if width == 0 {
        return Err(CliError::Usage(format!(
            "invalid --{} 0: must be at least 1",
            if args.config == BenchConfig::OmniglotConv {
                "filters"
            } else {
                "width"
            }
        )));
    }
    family.validate()?;
    if tasks == 0 {
        return Err(CliError::Usage(
            "invalid --tasks 0: must be at least 1".into(),
        ));
    }
    let every = args.algorithm.inner_checkpoint_every(adapt.inner_steps);
    let adapt = args.algorithm.configure(
        adapt
            .with_order(args.order)
            .with_inner_checkpoint_every(every),
    );
    // The family's parts at their first meta step (MAML++'s multi-step loss: equal
    // weights), on the configuration's model.
    let (conv, params) = match args.config {
        BenchConfig::OmniglotConv => (true, 18),
        BenchConfig::Sinusoid => (false, 6),
        _ => (false, 2),
    };
    let model = conv.then(|| {
        maml_burn::maml_core::model::presets::ConvNetConfig::new(
            maml_burn::maml_core::model::presets::ConvNet::Conv4,
        )
        .into()
    });
    let parts = args.family_parts.apply(adapt, model, 1, 1.0)?;
    let per_step_bn = match parts.model {
        Some(maml_burn::maml_core::model::presets::ModelConfig::Conv(c)) => c.per_step_bn,
        _ => None,
    };
    let mut adapt = parts.adapt;
    adapt.inner_params = args.algorithm.algorithm.inner_params(params);
    if let Some(schedule) = &parts.schedule {
        adapt = schedule.adapt_at(&adapt, 0).with_order(args.order);
    }
    adapt.validate()?;
    let inner_steps = adapt.inner_steps;
    let d_in = family.d_in;
    let meta_optimizer = match args.config {
        BenchConfig::Sinusoid | BenchConfig::OmniglotConv => {
            maml_burn::maml_core::MetaOptimizer::Adam
        }
        _ => maml_burn::maml_core::MetaOptimizer::Sgd,
    };
    let job = BenchJob {
        width,
        gradient: args.gradient,
        rng: rand::SeedableRng::seed_from_u64(0),
        config: args.config,
        family,
        tasks,
        meta: MetaConfig::new(adapt)
            .with_meta_lr(meta_lr)
            .with_meta_optimizer(meta_optimizer),
        seconds: args.seconds,
        per_step_bn,
    };
    let (steps, seconds, device, step_heap) = dispatch_with(
        args.backend.backend,
        args.backend.precision,
        args.backend.threads,
        job,
    )?;
    let config_name = match args.config {
        BenchConfig::Linreg16 => "linreg-16",
        BenchConfig::Seed => "seed",
        BenchConfig::Sinusoid => "sinusoid",
        BenchConfig::OmniglotConv => "omniglot-conv",
    };
    let report = BenchReport {
        config: config_name.into(),
        order: args.order.to_string(),
        algorithm: args.algorithm.algorithm.to_string(),
        inner_checkpoint_every: every,
        backend: args.backend.backend.to_string(),
        precision: args.backend.precision.to_string(),
        d_in: if args.config == BenchConfig::Seed {
            1
        } else {
            d_in
        },
        width: matches!(
            args.config,
            BenchConfig::Sinusoid | BenchConfig::OmniglotConv
        )
        .then_some(width),
        gradient: args.gradient.to_string(),
        tasks,
        inner_steps,
        meta_steps: steps,
        seconds,
        meta_steps_per_s: steps as f64 / seconds,
        ms_per_meta_step: seconds * 1e3 / steps as f64,
        peak_rss_bytes: peak_rss_bytes(),
        meta_step_heap_bytes: step_heap,
        device,
    };
    if args.json {
        print_json(&report);
    } else {
        crate::emit(&format!(
            "{} {}-order on {} ({}): {:.1} meta-steps/s ({:.3} ms/step), meta-step heap \
             {:.2} MiB, peak RSS {}",
            report.config,
            report.order,
            report.backend,
            report.device,
            report.meta_steps_per_s,
            report.ms_per_meta_step,
            report.meta_step_heap_bytes as f64 / 1048576.0,
            report.peak_rss_bytes.map_or("unknown".into(), |b| format!(
                "{:.1} MiB",
                b as f64 / 1048576.0
            ))
        ));
    }
    Ok(())
}
