//! `maml bench`: meta-steps per second and peak memory of one configuration.

use clap::{Args, ValueEnum};
use maml_backends::dispatch_with;
use maml_burn::maml_core::data::families::LinearFamily;
use maml_burn::maml_core::{AdaptConfig, GradientPath, Loss, MetaConfig, Order};
use serde::Serialize;

use job::{BenchJob, peak_rss_bytes};

mod job;

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
