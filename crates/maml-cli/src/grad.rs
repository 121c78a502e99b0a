//! `maml grad` and `maml check`: one meta-gradient of a problem file.

use std::path::Path;

use burn::prelude::Backend;
use maml_burn::backend::{BackendJob, Precision, dispatch_with};
use maml_burn::maml_core::{Answer, Problem, closed_form, solve};
use serde::Serialize;

use crate::error::CliError;
use crate::{BackendArgs, print_json};

struct Solve(Problem);

impl BackendJob for Solve {
    type Output = Answer;
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Answer, CliError> {
        Ok(solve::<B>(&self.0, device)?)
    }
}

/// `maml grad PROBLEM`.
pub fn grad(path: &Path, args: BackendArgs) -> Result<(), CliError> {
    let problem = Problem::load(path)?;
    let answer = dispatch_with(args.backend, args.precision, args.threads, Solve(problem))?;
    print_json(&answer);
    Ok(())
}

#[derive(Debug, Serialize)]
struct Comparison {
    against: String,
    meta_loss_rel_error: f64,
    meta_grad_rel_error: f64,
    fast_weights_rel_error: f64,
    pass: bool,
}

#[derive(Debug, Serialize)]
struct CheckReport {
    problem: String,
    backend: String,
    precision: String,
    tolerance: f64,
    comparisons: Vec<Comparison>,
}

fn compare(against: &str, auto: &Answer, reference: &Answer, tol: f64) -> Comparison {
    let rel = |d: f64, scale: f64| d / scale.max(1e-300);
    let meta_loss = rel(
        (auto.meta_loss - reference.meta_loss).abs(),
        reference.meta_loss.abs(),
    );
    let meta_grad = rel(
        auto.meta_grad.max_abs_diff(&reference.meta_grad),
        reference.meta_grad.max_abs(),
    );
    let fast = auto
        .fast_weights
        .iter()
        .zip(&reference.fast_weights)
        .map(|(a, r)| rel(a.max_abs_diff(r), r.max_abs()))
        .fold(0.0, f64::max);
    let same_tasks = auto.fast_weights.len() == reference.fast_weights.len();
    Comparison {
        against: against.to_string(),
        meta_loss_rel_error: meta_loss,
        meta_grad_rel_error: meta_grad,
        fast_weights_rel_error: fast,
        pass: same_tasks && meta_loss <= tol && meta_grad <= tol && fast <= tol,
    }
}

/// `maml check PROBLEM [--expected ANSWER]`.
pub fn check(
    path: &Path,
    expected: Option<&Path>,
    tolerance: Option<f64>,
    args: BackendArgs,
) -> Result<(), CliError> {
    let problem = Problem::load(path)?;
    let expected = expected.map(Answer::load).transpose()?;
    let tol = tolerance.unwrap_or(match args.precision {
        Precision::F32 => 1e-4,
        Precision::F64 => 1e-9,
    });
    let manual = closed_form::meta_gradient(
        &problem.initial_weights(),
        &problem.tasks,
        &problem.adapt_config(),
    );
    let auto = dispatch_with(args.backend, args.precision, args.threads, Solve(problem))?;
    let mut comparisons = vec![compare("closed form", &auto, &manual, tol)];
    if let Some(expected) = &expected {
        comparisons.push(compare("expected answer", &auto, expected, tol));
    }
    let report = CheckReport {
        problem: path.display().to_string(),
        backend: args.backend.to_string(),
        precision: args.precision.to_string(),
        tolerance: tol,
        comparisons,
    };
    print_json(&report);
    match report.comparisons.iter().find(|c| !c.pass) {
        None => Ok(()),
        Some(c) => Err(CliError::CheckFailed(format!(
            "{}: automatic answer differs from the {} by more than {tol:e} \
             (meta_loss {:e}, meta_grad {:e}, fast_weights {:e})",
            path.display(),
            c.against,
            c.meta_loss_rel_error,
            c.meta_grad_rel_error,
            c.fast_weights_rel_error
        ))),
    }
}
