//! The flags of `maml train` (and the task-family defaults that `maml bench` shares).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use maml_burn::maml_core::config::Imaml;
use maml_burn::maml_core::data::families::LinearFamily;
use maml_burn::maml_core::model::mlp::Activation;
use maml_burn::maml_core::{AdaptConfig, Loss, MetaOptimizer, Order};
use maml_burn::maml_data::few_shot::ImageSource;

use crate::error::CliError;
use crate::family_args::{AlgorithmArg, FamilyArgs};
use crate::validation::ValidationArgs;
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
    /// Augmentation at meta-training: move every sampled image by up to this many pixels
    /// in each direction, at random (0: none).
    #[arg(long, default_value_t = 0)]
    pub shift: usize,
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
            shift: self.shift,
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
    /// The linear task family these flags describe.
    pub fn family(&self) -> LinearFamily {
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
    #[command(flatten)]
    pub algorithm: AlgorithmArgs,
}

/// The algorithm (`maml train` and `maml bench`).
#[derive(Debug, Clone, Args)]
pub struct AlgorithmArgs {
    /// The algorithm (docs/family.md).
    #[arg(long, value_enum, default_value = "maml")]
    pub algorithm: AlgorithmArg,
    /// iMAML: λ, the weight of the inner problem's proximal term λ/2 ‖φ − θ‖².
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub lambda: f64,
    /// iMAML: conjugate-gradient steps of the implicit meta-gradient.
    #[arg(long, default_value_t = 5)]
    pub cg_steps: usize,
    /// MAML in bounded memory: keep the fast weights only at every C-th inner step and
    /// run the steps between them again in the backward sweep (the same meta-gradient;
    /// memory K/C + C steps instead of K, about one more inner loop of time); `auto`:
    /// C = ⌈√K⌉.
    #[arg(long, value_name = "C|auto", value_parser = parse::<CheckpointEvery>)]
    pub inner_checkpoint_every: Option<CheckpointEvery>,
}

/// `--inner-checkpoint-every`: a number of inner steps, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// `⌈√K⌉` for K inner steps.
    Auto,
    /// Every this many inner steps.
    Steps(usize),
}

impl std::str::FromStr for CheckpointEvery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            _ => s.parse().map(Self::Steps).map_err(|_| {
                format!("invalid checkpoint interval {s:?}: a number of inner steps or auto")
            }),
        }
    }
}

impl AlgorithmArgs {
    /// `adapt` with the algorithm's fields set (iMAML's settings, Reptile; ANIL's and
    /// BOIL's adapted parameters are set once the model is known,
    /// [`AlgorithmArg::inner_params`]).
    pub fn configure(&self, adapt: AdaptConfig) -> AdaptConfig {
        let imaml = Imaml {
            lambda: self.lambda,
            cg_steps: self.cg_steps,
        };
        self.algorithm.configure(adapt, imaml)
    }

    /// The checkpoint interval for `inner_steps` inner steps, `None` without
    /// `--inner-checkpoint-every`.
    pub fn inner_checkpoint_every(&self, inner_steps: usize) -> Option<usize> {
        self.inner_checkpoint_every.map(|every| match every {
            CheckpointEvery::Auto => AdaptConfig::auto_inner_checkpoint_every(inner_steps),
            CheckpointEvery::Steps(steps) => steps,
        })
    }
}

impl HyperArgs {
    /// The inner loop, with `defaults` where a flag was not given.
    pub fn adapt(&self, defaults: &FamilyDefaults) -> AdaptConfig {
        let inner_steps = self.inner_steps.unwrap_or(defaults.inner_steps);
        let adapt = AdaptConfig::new(self.inner_lr.unwrap_or(defaults.inner_lr))
            .with_inner_steps(inner_steps)
            .with_order(self.order)
            .with_loss(self.loss.unwrap_or(defaults.loss))
            .with_inner_checkpoint_every(self.algorithm.inner_checkpoint_every(inner_steps));
        self.algorithm.configure(adapt)
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
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub linear: LinearArgs,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
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
    #[allow(missing_docs)] // a flattened group: its fields document themselves
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
    #[allow(missing_docs)] // a flattened group: its fields document themselves
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
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub family_parts: FamilyArgs,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub validation: ValidationArgs,
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
    /// the model-agnostic core (a linear model as a one-layer MLP). Threads share Burn's
    /// autodiff graph registry; MPI processes (--mpi) scale better on one machine.
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
