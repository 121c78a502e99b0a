//! `maml train`: meta-training with a progress bar, atomic checkpoints, metrics, plots.

use std::path::Path;

use clap::ValueEnum;
use maml_burn::maml_core::data::families::BlobsFamily;
use maml_burn::maml_core::data::families::SinusoidFamily;
use maml_burn::maml_core::data::{read_json, read_text, write_atomic};
use maml_burn::maml_core::model::mlp::MlpConfig;
use maml_burn::maml_core::model::presets::ConvNet;
use maml_burn::maml_core::model::presets::ConvNetConfig;
use maml_burn::maml_core::model::presets::ModelConfig;
use maml_burn::maml_core::{Loss, MamlError, MetaConfig};
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::run::TrainConfig;
use maml_burn::maml_data::run::load_tasks;
use maml_burn::maml_data::stored::ModelCheckpoint;

use crate::compare::fixed_optimum;
use crate::error::CliError;
use crate::metrics::parse_metrics;
use crate::train_args::{FamilyArg, FamilyDefaults, ModelArg, TrainArgs};
use crate::training::{Parallel, TrainJob, report, run_training};

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
    let mut defaults = FamilyDefaults::of(args.tasks.is_none().then_some(args.family));
    if let Some((inner_steps, inner_lr)) = args.family_parts.recipe_defaults() {
        defaults.inner_steps = inner_steps;
        defaults.inner_lr = inner_lr;
    }
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
    let meta_steps = args.meta_steps.unwrap_or(DEFAULT_META_STEPS);
    let meta_lr = args.meta_lr.unwrap_or(defaults.meta_lr);
    let params = crate::family_args::param_tensors(model.as_ref());
    let adapt = adapt
        .with_meta_sgd(args.meta_sgd)
        .with_inner_params(args.hyper.algorithm.algorithm.inner_params(params));
    let parts = args.family_parts.apply(adapt, model, meta_steps, meta_lr)?;
    let validation = args.validation.validation(&tasks)?;
    let meta = MetaConfig::new(parts.adapt)
        .with_meta_lr(meta_lr)
        .with_meta_optimizer(args.meta_optimizer);
    let config = TrainConfig::new(meta, tasks)
        .with_meta_batch(meta_batch)
        .with_meta_steps(meta_steps)
        .with_seed(args.rng_seed)
        .with_model(parts.model)
        .with_divergence_threshold(args.divergence_threshold.0)
        .with_schedule(parts.schedule)
        .with_validation(validation);
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
        initial: Some((
            checkpoint.model,
            checkpoint.step_sizes,
            checkpoint.step_table,
        )),
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
    initial: Option<crate::workers::Initial>,
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
