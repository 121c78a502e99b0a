//! The linear model's comparison of orders (the seed's point, made visible): the same
//! run in the other order, both against a random initialisation on fresh tasks
//! (`adaptation.svg`), and on a fixed task set their distances to the exact MAML optimum
//! and to the first-order fixed point in closed form (`convergence.svg`); and `maml
//! optimum`, that optimum and fixed point of a task-set file.

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use clap::Args;
use maml_burn::maml_core::data::LinearWeights;
use maml_burn::maml_core::data::TaskSetFile;
use maml_burn::maml_core::model::mlp::Mlp;
use maml_burn::maml_core::train::guard::step_rng;
use maml_burn::maml_core::{AdaptConfig, Loss, Order, SecondOrder};
use maml_burn::maml_data::closed_form::{Optimum, optimum};
use maml_burn::maml_data::model_trainer::ModelTrainer;
use maml_burn::maml_data::model_trainer::evaluate;
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::run::TrainConfig;
use maml_burn::maml_data::run::load_tasks;

use crate::error::CliError;
use crate::metrics::Row;
use crate::plot::{Series, Style, line_plot};
use crate::{parse, print_json};

/// The relative max-norm distances of `w` to the exact optimum and to the first-order
/// fixed point.
pub fn distances(w: &LinearWeights, opt: &Optimum) -> (f64, f64) {
    (
        w.max_abs_diff(&opt.second_order) / opt.second_order.max_abs().max(1e-300),
        w.max_abs_diff(&opt.first_order) / opt.first_order.max_abs().max(1e-300),
    )
}

/// The exact MAML optimum of a linear run on a fixed task set (a squared loss, one step
/// size), if it has one; a note on stderr when the closed form cannot be solved.
pub fn fixed_optimum(config: &TrainConfig) -> Option<Optimum> {
    let TaskSource::File { path } = &config.tasks else {
        return None;
    };
    let adapt = &config.meta.adapt;
    if config.model.is_some() || adapt.meta_sgd || adapt.loss == Loss::CrossEntropy {
        return None;
    }
    let tasks = load_tasks(path).ok()?;
    let d_out = tasks[0].query.y.as_ref().map_or(1, |y| y[0].len());
    match optimum(&tasks, d_out, adapt) {
        Ok(opt) => Some(opt),
        Err(err) => {
            eprintln!("note: no convergence plot: {err}");
            None
        }
    }
}

/// After a linear run of `config` that ended at `weights` with metrics `rows`: trains
/// the other order from the same start, draws `adaptation.svg` (both orders and a
/// Kaiming-normal initialisation on `eval_tasks` fresh tasks) and, with an optimum,
/// `convergence.svg`. Returns the other order's meta-loss series (for `meta_loss.svg`);
/// none when that run stops (a note on stderr).
pub fn compare_orders<B: Backend>(
    config: &TrainConfig,
    rows: &[Row],
    weights: &LinearWeights,
    opt: Option<&Optimum>,
    out: &Path,
    eval_tasks: usize,
    device: &B::Device,
) -> Result<Option<Series>, CliError> {
    let order = config.meta.adapt.order;
    let other = match order {
        Order::Second => Order::First,
        Order::First => Order::Second,
    };
    let mut other_config = config.clone();
    other_config.meta.adapt.order = other;
    let family = config.tasks.family()?;
    let mut trainer = ModelTrainer::<B, Mlp<SecondOrder<B>>>::new(
        other_config,
        config.tasks.family()?,
        None,
        0,
        device,
    )?;
    let linear = |t: &ModelTrainer<B, Mlp<SecondOrder<B>>>| {
        let weights = t.weights();
        weights
            .as_linear()
            .cloned()
            .expect("the linear model is an MLP of one layer")
    };
    let mut other_rows = Vec::new();
    while trainer.step_index() < config.meta_steps {
        let before = opt.map(|o| distances(&linear(&trainer), o));
        match trainer.step() {
            Ok(m) => other_rows.push((m.step, m.meta_loss, before)),
            Err(err) => {
                eprintln!("note: the {other}-order comparison run stopped: {err}");
                return Ok(None);
            }
        }
    }
    let eval = family.sample(eval_tasks.max(1), &mut step_rng(config.seed, usize::MAX));
    let adapt = AdaptConfig {
        order: Order::First,
        ..config.meta.adapt.clone()
    };
    let random = LinearWeights::kaiming(family.d_in(), family.d_out(), config.seed);
    let inits = [
        (format!("{order}-order MAML"), weights.clone()),
        (format!("{other}-order MAML"), linear(&trainer)),
        ("random init (Kaiming)".to_string(), random),
    ];
    let mut curves = Vec::new();
    for (name, w) in inits {
        let report = evaluate::<B>(&w, &eval, &adapt, device)?;
        curves.push(Series {
            style: Style::Line,
            name,
            points: report
                .curve
                .iter()
                .enumerate()
                .map(|(k, l)| (k as f64, *l))
                .collect(),
        });
    }
    line_plot(
        &out.join("adaptation.svg"),
        &format!("Adaptation on {} fresh tasks", eval.len()),
        "inner steps",
        "mean query loss",
        &curves,
        true,
    )?;
    if opt.is_some() {
        let ours: Vec<_> = rows.iter().map(|r| (r.step, r.distances)).collect();
        let theirs: Vec<_> = other_rows.iter().map(|r| (r.0, r.2)).collect();
        let (second, first) = match order {
            Order::Second => (&ours, &theirs),
            Order::First => (&theirs, &ours),
        };
        let dist = |name: &str, rows: &[(usize, Option<(f64, f64)>)], to_optimum: bool| Series {
            style: Style::Line,
            name: name.into(),
            points: rows
                .iter()
                .filter_map(|(step, d)| {
                    let (a, b) = (*d)?;
                    Some((*step as f64, if to_optimum { a } else { b }.max(1e-17)))
                })
                .collect(),
        };
        line_plot(
            &out.join("convergence.svg"),
            "Distance to the exact MAML optimum (relative, max-norm)",
            "meta step",
            "relative distance",
            &[
                dist("second-order MAML to the exact optimum", second, true),
                dist("first-order MAML to the exact optimum", first, true),
                dist(
                    "first-order MAML to the first-order fixed point",
                    first,
                    false,
                ),
            ],
            true,
        )?;
    }
    Ok(Some(Series {
        style: Style::Line,
        name: format!("{other}-order MAML"),
        points: other_rows.iter().map(|r| (r.0 as f64, r.1)).collect(),
    }))
}

/// `maml optimum` arguments.
#[derive(Debug, Args)]
pub struct OptimumArgs {
    /// A task-set file (`tasks`, or a whole problem file) whose tasks form the fixed set.
    #[arg(long)]
    pub tasks: PathBuf,
    /// Inner steps K (default: the file's, else 5 as `maml train`).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner learning rate (default: the file's, else 0.1 as `maml train`).
    #[arg(long, allow_hyphen_values = true)]
    pub inner_lr: Option<f64>,
    /// mse or sse (default: the file's, else mse as `maml train`).
    #[arg(long, value_parser = parse::<Loss>)]
    pub loss: Option<Loss>,
}

/// `maml optimum`.
pub fn optimum_cmd(args: OptimumArgs) -> Result<(), CliError> {
    let set = TaskSetFile::load(&args.tasks)?;
    let adapt = AdaptConfig::new(args.inner_lr.or(set.inner_lr).unwrap_or(0.1))
        .with_inner_steps(args.inner_steps.or(set.inner_steps).unwrap_or(5))
        .with_loss(args.loss.or(set.loss).unwrap_or(Loss::Mse));
    adapt.validate_linear()?;
    let opt = optimum(&set.tasks, set.d_out(), &adapt)?;
    print_json(&opt);
    Ok(())
}
