//! `maml train`: meta-training with a progress bar, atomic checkpoints, metrics, plots.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use maml_burn::maml_core::data::{read_json, read_text, write_atomic};
use maml_burn::maml_core::train::trainer::load_tasks;
use maml_burn::maml_core::{
    Activation, AdaptConfig, BlobsFamily, ConvNet, ConvNetConfig, ImageSource, LinearFamily, Loss,
    MamlError, MetaConfig, MetaOptimizer, MlpConfig, ModelCheckpoint, ModelConfig, Order,
    SinusoidFamily, TaskSource, TrainConfig,
};

use crate::compare::fixed_optimum;
use crate::error::CliError;
use crate::metrics::parse_metrics;
use crate::training::{Parallel, TrainJob, report, run_training};
use crate::{BackendArgs, parse};

/// Built-in task families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    /// The seed's task (support x = 1, query x = 2, zero targets).
    Seed,
    /// Linear regression, y = x A^T + c + noise.
    Linear,
    /// The MAML paper's sinusoids, y = A sin(x - phase) (in = out = 1).
    Sinusoid,
    /// N-way classification of Gaussian clusters (--ways, --in; cross-entropy).
    Blobs,
    /// N-way K-shot classification of Omniglot images (--data, --ways, --shots,
    /// --queries, --rotations, --alphabets; cross-entropy), for --model conv4.
    Omniglot,
}

/// The model to meta-learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// The linear model y = x W^T + b.
    Linear,
    /// A multi-layer perceptron (--hidden, --activation).
    Mlp,
    /// The MAML paper's Omniglot network: 4 blocks of 3x3 conv (stride 2), batch norm,
    /// ReLU; spatial mean; linear head (--filters, default 64).
    Conv4,
    /// The MAML paper's MiniImageNet network: 4 blocks of 3x3 conv, batch norm, ReLU,
    /// 2x2 max pool; flatten; linear head (--filters, default 32).
    Conv4Pool,
}

/// Options of the image families (`omniglot`) and conv nets.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// A folder in the Omniglot layout (ALPHABET/CHARACTER/*.png), or a zip of one.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Support images per class, K.
    #[arg(long, default_value_t = 1)]
    pub shots: usize,
    /// Query images per class.
    #[arg(long, default_value_t = 1)]
    pub queries: usize,
    /// Each character at 0, 90, 180 and 270 degrees is a class of its own.
    #[arg(long)]
    pub rotations: bool,
    /// Only these alphabets, comma-separated (default: all): a split by alphabet.
    #[arg(long, value_delimiter = ',')]
    pub alphabets: Vec<String>,
    /// Filters of every conv layer [default: conv4 64, conv4-pool 32].
    #[arg(long)]
    pub filters: Option<usize>,
}

impl ImageArgs {
    /// The image family these flags describe, with `ways` classes per task.
    pub fn source(&self, ways: usize) -> Result<ImageSource, CliError> {
        let data = self.data.as_ref().ok_or_else(|| {
            CliError::Usage("--family omniglot needs --data (a folder or a zip of one)".into())
        })?;
        Ok(ImageSource {
            data: data.display().to_string(),
            ways,
            shots: self.shots,
            queries: self.queries,
            rotations: self.rotations,
            alphabets: self.alphabets.clone(),
        })
    }
}

/// Options of the `linear` task family.
#[derive(Debug, Clone, Args)]
pub struct LinearArgs {
    /// Input dimension.
    #[arg(long = "in", default_value_t = 16)]
    pub d_in: usize,
    /// Output dimension.
    #[arg(long = "out-dim", default_value_t = 1)]
    pub d_out: usize,
    /// Support rows per task.
    #[arg(long, default_value_t = 10)]
    pub support_shots: usize,
    /// Query rows per task.
    #[arg(long, default_value_t = 15)]
    pub query_shots: usize,
    /// Standard deviation of the target noise.
    #[arg(long, default_value_t = 0.1)]
    pub noise: f64,
    /// Mean of the task coefficients A.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub coef_mean: f64,
    /// Spread of the task coefficients A around their mean.
    #[arg(long, default_value_t = 0.5)]
    pub coef_std: f64,
    /// Mean of the task offsets c.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub offset_mean: f64,
    /// Spread of the task offsets c.
    #[arg(long, default_value_t = 0.5)]
    pub offset_std: f64,
}

impl LinearArgs {
    fn family(&self) -> LinearFamily {
        LinearFamily {
            d_in: self.d_in,
            d_out: self.d_out,
            support_shots: self.support_shots,
            query_shots: self.query_shots,
            noise: self.noise,
            coef_mean: self.coef_mean,
            coef_std: self.coef_std,
            offset_mean: self.offset_mean,
            offset_std: self.offset_std,
        }
    }
}

/// Inner-loop and meta-update hyperparameters.
#[derive(Debug, Clone, Args)]
pub struct HyperArgs {
    /// first or second.
    #[arg(long, default_value = "second", value_parser = parse::<Order>)]
    pub order: Order,
    /// Inner gradient steps K [default: 5; --family sinusoid and omniglot: 1, as in the
    /// MAML paper].
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner learning rate [default: 0.1; --family sinusoid: 0.01, omniglot: 0.4, as in
    /// the MAML paper].
    #[arg(long, allow_hyphen_values = true)]
    pub inner_lr: Option<f64>,
    /// mse, sse or cross_entropy [default: cross_entropy for the classification families,
    /// blobs and omniglot; mse otherwise].
    #[arg(long, value_parser = parse::<Loss>)]
    pub loss: Option<Loss>,
}

impl HyperArgs {
    /// The inner loop, with `defaults` where a flag was not given.
    pub fn adapt(&self, defaults: &FamilyDefaults) -> AdaptConfig {
        AdaptConfig::new(self.inner_lr.unwrap_or(defaults.inner_lr))
            .with_inner_steps(self.inner_steps.unwrap_or(defaults.inner_steps))
            .with_order(self.order)
            .with_loss(self.loss.unwrap_or(defaults.loss))
    }
}

/// The hyperparameters a run takes when their flags are not given: the MAML paper's
/// sinusoid settings for `--family sinusoid` (with the others' defaults, 0.1 and five
/// inner steps, it diverges within about a hundred meta steps), the same for every
/// other family and task file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FamilyDefaults {
    /// Inner gradient steps.
    pub inner_steps: usize,
    /// Inner learning rate.
    pub inner_lr: f64,
    /// Meta learning rate.
    pub meta_lr: f64,
    /// The loss.
    pub loss: Loss,
}

impl FamilyDefaults {
    /// The MAML paper's sinusoid setting (Finn et al. 2017, section 5.1): one inner step
    /// of 0.01, meta learning rate 0.001 (also `maml bench --config sinusoid`'s).
    pub const SINUSOID_PAPER: Self = Self {
        inner_steps: 1,
        inner_lr: 0.01,
        meta_lr: 0.001,
        loss: Loss::Mse,
    };
    /// The MAML paper's Omniglot setting (section 5.2): one inner step of 0.4, Adam at
    /// 0.001, cross-entropy.
    pub const OMNIGLOT_PAPER: Self = Self {
        inner_steps: 1,
        inner_lr: 0.4,
        meta_lr: 0.001,
        loss: Loss::CrossEntropy,
    };
    /// Every other family and task files.
    pub const GENERAL: Self = Self {
        inner_steps: 5,
        inner_lr: 0.1,
        meta_lr: 0.01,
        loss: Loss::Mse,
    };

    /// The defaults of `family` (`None`: a task file).
    pub fn of(family: Option<FamilyArg>) -> Self {
        match family {
            Some(FamilyArg::Sinusoid) => Self::SINUSOID_PAPER,
            Some(FamilyArg::Omniglot) => Self::OMNIGLOT_PAPER,
            Some(FamilyArg::Blobs) => Self {
                loss: Loss::CrossEntropy,
                ..Self::GENERAL
            },
            _ => Self::GENERAL,
        }
    }
}

/// `maml train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A fixed task set: the tasks of a problem file (the meta-batch is then all of
    /// them unless --meta-batch says otherwise).
    #[arg(long, conflicts_with = "family")]
    pub tasks: Option<PathBuf>,
    /// A task family to draw fresh tasks from every meta step.
    #[arg(long, value_enum, default_value = "linear")]
    pub family: FamilyArg,
    #[command(flatten)]
    pub linear: LinearArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    /// sgd or adam.
    #[arg(long, default_value = "adam", value_parser = parse::<MetaOptimizer>)]
    pub meta_optimizer: MetaOptimizer,
    /// Meta learning rate [default: 0.01; --family sinusoid and omniglot: 0.001, as in the
    /// MAML paper].
    #[arg(long, allow_hyphen_values = true)]
    pub meta_lr: Option<f64>,
    /// Meta steps (with --resume: the total to reach).
    #[arg(long)]
    pub meta_steps: Option<usize>,
    /// Tasks per meta-batch (default 25; a fixed task set: all its tasks).
    #[arg(long)]
    pub meta_batch: Option<usize>,
    /// Seed of the initial weights and of every meta-batch.
    #[arg(long, default_value_t = 0)]
    pub rng_seed: u64,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Output directory: config.json, metrics.csv, checkpoint.json, weights.json, plots.
    #[arg(long, default_value = "maml-run")]
    pub out: PathBuf,
    /// Start from a saved configuration (a run's config.json); the task and
    /// hyperparameter flags are then ignored, except --meta-steps.
    #[arg(long, conflicts_with_all = ["tasks", "resume"])]
    pub config: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (its config.json is used; only
    /// --meta-steps may change).
    #[arg(long)]
    pub resume: bool,
    /// Write a checkpoint every N meta steps (and at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Fresh tasks for the adaptation curve.
    #[arg(long, default_value_t = 100)]
    pub eval_tasks: usize,
    /// Skip the comparison run (first order) and the adaptation plot.
    #[arg(long)]
    pub no_compare: bool,
    /// The model: linear, mlp, conv4 or conv4-pool.
    #[arg(long, value_enum, default_value = "linear")]
    pub model: ModelArg,
    #[command(flatten)]
    pub images: ImageArgs,
    /// Hidden layer widths of the MLP, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "40,40")]
    pub hidden: Vec<usize>,
    /// Activation of the MLP: relu or tanh.
    #[arg(long, default_value = "relu", value_parser = parse::<Activation>)]
    pub activation: Activation,
    /// Meta-SGD: learn one inner step size per parameter (starting at --inner-lr).
    #[arg(long)]
    pub meta_sgd: bool,
    /// Classes per task of the blobs and omniglot families.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// Steps of the pretrained baseline of a run on the model-agnostic core (default:
    /// --meta-steps; --family omniglot: 0; 0: none).
    #[arg(long)]
    pub baseline_steps: Option<usize>,
    /// Stop as diverged when the meta-loss rises above this many times its lowest value
    /// so far; `off` stops only on NaN or infinity.
    #[arg(long, default_value = "1e6", value_parser = parse_threshold)]
    pub divergence_threshold: Threshold,
    /// Data-parallel workers in this process (threads on burn-collective): each meta
    /// step's tasks are split over them and their meta-gradients all-reduced. Runs on
    /// the model-agnostic core (a linear model as a one-layer MLP).
    #[arg(long, default_value_t = 1, value_parser = parse_workers)]
    pub workers: usize,
    /// Train as one process of an MPI job (`mpirun -np M maml train ... --mpi`): each
    /// rank takes its share of every meta-batch; rank 0 alone writes --out. Needs a
    /// build with `--features mpi`.
    #[arg(long)]
    pub mpi: bool,
}

fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(format!(
            "invalid worker count {s:?}: expected a whole number from 1 to 256"
        )),
    }
}

/// `--divergence-threshold`: a factor, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Threshold(pub Option<f64>);

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    if s == "off" {
        return Ok(Threshold(None));
    }
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 1.0 => Ok(Threshold(Some(t))),
        _ => Err(format!(
            "invalid divergence threshold {s:?}: expected a number above 1, or off"
        )),
    }
}

const DEFAULT_META_STEPS: usize = 500;
const DEFAULT_META_BATCH: usize = 25;

/// Reads the inputs of `maml train` (flags, `--config`, or the checkpoint to resume),
/// creates `--out` and writes its `config.json`.
fn plan(args: &TrainArgs, parallel: Parallel) -> Result<TrainJob, CliError> {
    let out = args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| MamlError::io("cannot create", &out, e))?;
    if args.resume {
        return resume_job(args, &out, parallel);
    }
    let config = if let Some(path) = &args.config {
        let mut config: TrainConfig = read_json(path)?;
        if let Some(steps) = args.meta_steps {
            config.meta_steps = steps;
        }
        config.validate()?;
        config.tasks.family()?;
        config
    } else {
        config_from_flags(args)?
    };
    config.validate()?;
    if args.checkpoint_every == 0 {
        return Err(CliError::Usage(
            "invalid --checkpoint-every 0: must be at least 1".into(),
        ));
    }
    let config_json = serde_json::to_string_pretty(&config).expect("configs serialise");
    write_atomic(&out.join("config.json"), config_json.as_bytes())?;
    // The pretrained baseline is the MAML paper's for regression with an MLP (Figure 3);
    // the linear model is compared with the other order instead.
    let mlp = matches!(config.model, Some(ModelConfig::Mlp(_)));
    let job = TrainJob {
        parallel,
        baseline_steps: args
            .baseline_steps
            .unwrap_or(if mlp { config.meta_steps } else { 0 }),
        optimum: fixed_optimum(&config),
        compare: !args.no_compare,
        config,
        initial: None,
        start_step: 0,
        rows: Vec::new(),
        out,
        checkpoint_every: args.checkpoint_every,
        eval_tasks: if args.no_compare { 0 } else { args.eval_tasks },
    };
    check_split(&job)?;
    Ok(job)
}

/// The configuration of a new run from the command line's flags.
fn config_from_flags(args: &TrainArgs) -> Result<TrainConfig, CliError> {
    let tasks = match &args.tasks {
        Some(path) => TaskSource::File {
            path: path.display().to_string(),
        },
        None => match args.family {
            FamilyArg::Seed => TaskSource::Seed,
            FamilyArg::Linear => TaskSource::Linear(args.linear.family()),
            FamilyArg::Sinusoid => TaskSource::Sinusoid(SinusoidFamily {
                support_shots: args.linear.support_shots,
                query_shots: args.linear.query_shots,
                ..SinusoidFamily::default()
            }),
            FamilyArg::Blobs => TaskSource::Blobs(BlobsFamily {
                ways: args.ways,
                d_in: args.linear.d_in,
                support_shots: args.linear.support_shots,
                query_shots: args.linear.query_shots,
                ..BlobsFamily::default()
            }),
            FamilyArg::Omniglot => TaskSource::Omniglot(args.images.source(args.ways)?),
        },
    };
    let defaults = FamilyDefaults::of(args.tasks.is_none().then_some(args.family));
    let adapt = args.hyper.adapt(&defaults);
    let classify = matches!(tasks, TaskSource::Blobs(_) | TaskSource::Omniglot(_));
    if classify && adapt.loss != Loss::CrossEntropy {
        return Err(CliError::Usage(format!(
            "the {} family is classification: pass --loss cross_entropy (got --loss {})",
            args.family
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            adapt.loss
        )));
    }
    let conv = matches!(args.model, ModelArg::Conv4 | ModelArg::Conv4Pool);
    if conv != matches!(tasks, TaskSource::Omniglot(_)) {
        return Err(CliError::Usage(if conv {
            "--model conv4 and conv4-pool take images: use --family omniglot".into()
        } else {
            "--family omniglot needs a conv net: --model conv4 or conv4-pool".into()
        }));
    }
    // The linear model is an MLP of one layer: `None`, drawn Kaiming-normal as the seed.
    let model: Option<ModelConfig> = match args.model {
        ModelArg::Linear => None,
        ModelArg::Conv4 | ModelArg::Conv4Pool => Some(
            ConvNetConfig::new(if args.model == ModelArg::Conv4 {
                ConvNet::Conv4
            } else {
                ConvNet::Conv4Pool
            })
            .with_filters(args.images.filters)
            .into(),
        ),
        ModelArg::Mlp => Some(
            MlpConfig::new()
                .with_hidden(args.hidden.clone())
                .with_activation(args.activation)
                .into(),
        ),
    };
    let meta_batch = match (&args.meta_batch, &args.tasks) {
        (Some(n), _) => *n,
        (None, Some(path)) => load_tasks(&path.display().to_string())?.len(),
        (None, None) => DEFAULT_META_BATCH,
    };
    let meta = MetaConfig::new(adapt.with_meta_sgd(args.meta_sgd))
        .with_meta_lr(args.meta_lr.unwrap_or(defaults.meta_lr))
        .with_meta_optimizer(args.meta_optimizer);
    let config = TrainConfig::new(meta, tasks)
        .with_meta_batch(meta_batch)
        .with_meta_steps(args.meta_steps.unwrap_or(DEFAULT_META_STEPS))
        .with_seed(args.rng_seed)
        .with_model(model)
        .with_divergence_threshold(args.divergence_threshold.0);
    Ok(config)
}

/// Refuses a split with more workers (or ranks) than tasks per meta-batch.
fn check_split(job: &TrainJob) -> Result<(), CliError> {
    let (n, what) = match job.parallel {
        Parallel::Alone => return Ok(()),
        Parallel::Workers(n) => (n, "--workers"),
        Parallel::Mpi { size, .. } => (size, "MPI processes (mpirun -np)"),
    };
    if n > job.config.meta_batch {
        return Err(CliError::Usage(format!(
            "invalid {what} {n}: more than the tasks per meta-batch ({}); every worker needs \
             a task",
            job.config.meta_batch
        )));
    }
    Ok(())
}

/// `maml train`.
pub fn train(args: TrainArgs) -> Result<(), CliError> {
    if args.mpi {
        return train_mpi(args);
    }
    let parallel = match args.workers {
        1 => Parallel::Alone,
        n => Parallel::Workers(n),
    };
    let job = plan(&args, parallel)?;
    report(&run_training(job, args.backend)?);
    Ok(())
}

/// `maml train --resume`: continues the run in `out` from its checkpoint, with its
/// metrics so far.
fn resume_job(args: &TrainArgs, out: &Path, parallel: Parallel) -> Result<TrainJob, CliError> {
    let checkpoint = ModelCheckpoint::load(&out.join("checkpoint.json"))?;
    let mut config = checkpoint.config.clone();
    if let Some(steps) = args.meta_steps {
        config.meta_steps = steps;
    }
    let metrics_path = out.join("metrics.csv");
    let rows = match read_text(&metrics_path) {
        Ok(text) => parse_metrics(&text, &metrics_path, checkpoint.step)?,
        Err(_) => Vec::new(),
    };
    let job = TrainJob {
        parallel,
        baseline_steps: args.baseline_steps.unwrap_or(0),
        optimum: fixed_optimum(&config),
        compare: !args.no_compare,
        initial: Some((checkpoint.model, checkpoint.step_sizes)),
        start_step: checkpoint.step,
        rows,
        config,
        out: out.to_path_buf(),
        checkpoint_every: args.checkpoint_every,
        eval_tasks: if args.no_compare { 0 } else { args.eval_tasks },
    };
    check_split(&job)?;
    Ok(job)
}

#[cfg(not(feature = "mpi"))]
fn train_mpi(_: TrainArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "--mpi: this maml was built without MPI; build it with `cargo build --release -p \
         maml-cli --features mpi` (it needs an MPI library: apt-get install openmpi-bin \
         libopenmpi-dev libclang-dev) and start it with mpirun"
            .into(),
    ))
}

/// What rank 0 sends every other rank before the first meta step.
#[cfg(feature = "mpi")]
#[derive(serde::Serialize, serde::Deserialize)]
struct MpiStart {
    config: TrainConfig,
    initial: Option<crate::training::Initial>,
    start_step: usize,
}

/// `maml train --mpi`, in every process of an MPI job: rank 0 reads the inputs and
/// writes `--out`; every rank trains its share of each meta-batch. An error that one
/// rank alone meets ends the whole job (`MPI_Abort`), as the others would wait for it in
/// the next all-reduce; a divergence, which all ranks meet at the same step, ends each
/// one normally.
#[cfg(feature = "mpi")]
fn train_mpi(args: TrainArgs) -> Result<(), CliError> {
    use crate::mpi::MpiJob;
    if args.workers > 1 {
        return Err(CliError::Usage(format!(
            "--mpi with --workers {}: an MPI process runs one worker; start more processes \
             (mpirun -np) instead",
            args.workers
        )));
    }
    let mpi = MpiJob::init()?;
    let parallel = Parallel::Mpi {
        rank: mpi.rank,
        size: mpi.size,
    };
    let (own, bytes) = if mpi.rank == 0 {
        let job = match plan(&args, parallel) {
            Ok(job) => job,
            Err(err) => {
                eprintln!("error: {err}");
                mpi.abort(1)
            }
        };
        let start = MpiStart {
            config: job.config.clone(),
            initial: job.initial.clone(),
            start_step: job.start_step,
        };
        let bytes = serde_json::to_vec(&start).expect("configs and weights serialise");
        (Some(job), bytes)
    } else {
        (None, Vec::new())
    };
    let bytes = mpi.broadcast(bytes);
    let job = match own {
        Some(job) => job,
        None => {
            let start: MpiStart =
                serde_json::from_slice(&bytes).expect("rank 0 sent a start it serialised");
            TrainJob {
                parallel,
                baseline_steps: 0,
                config: start.config,
                initial: start.initial,
                start_step: start.start_step,
                rows: Vec::new(),
                out: args.out.clone(),
                checkpoint_every: args.checkpoint_every,
                eval_tasks: 0,
                optimum: None,
                compare: false,
            }
        }
    };
    match run_training(job, args.backend) {
        Ok(summary) if mpi.rank == 0 => {
            report(&summary);
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(err) if err.is_divergence() && mpi.rank == 0 => Err(err),
        Err(err) if err.is_divergence() => {
            drop(mpi);
            std::process::exit(1)
        }
        Err(err) => {
            eprintln!("error: MPI rank {}: {err}", mpi.rank);
            mpi.abort(1)
        }
    }
}
