//! `maml grad` and `maml check`: one meta-gradient of a problem file.

use std::path::Path;

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::{BackendJob, Precision};
use maml_burn::maml_core::{
    Answer, AnswerV2, AnyAnswer, AnyProblem, MlpWeights, Problem, ProblemV2, closed_form,
    finite_differences_v2, solve, solve_v2,
};
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

struct SolveAny(AnyProblem);

impl BackendJob for SolveAny {
    type Output = AnyAnswer;
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<AnyAnswer, CliError> {
        Ok(self.0.solve::<B>(device)?)
    }
}

/// `maml grad PROBLEM`: version 1 (linear) or 2 (MLP, Meta-SGD, cross-entropy).
pub fn grad(path: &Path, args: BackendArgs) -> Result<(), CliError> {
    let problem = AnyProblem::load(path)?;
    let answer = dispatch_with(
        args.backend,
        args.precision,
        args.threads,
        SolveAny(problem),
    )?;
    print_json(&answer);
    Ok(())
}

/// The automatic answer to a version-2 problem and the finite-difference meta-gradient.
struct SolveV2 {
    problem: ProblemV2,
    finite_differences: bool,
}

impl BackendJob for SolveV2 {
    type Output = (AnswerV2, Option<(MlpWeights, Option<MlpWeights>)>);
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Output, CliError> {
        let answer = solve_v2::<B>(&self.problem, device)?;
        let fd = self
            .finite_differences
            .then(|| finite_differences_v2::<B>(&self.problem, 1e-6, device))
            .transpose()?;
        Ok((answer, fd))
    }
}

fn compare_v2(
    against: &str,
    auto: &AnswerV2,
    meta_loss: Option<f64>,
    meta_grad: &MlpWeights,
    lr_grad: Option<&MlpWeights>,
    fast: Option<&[MlpWeights]>,
    tol: f64,
) -> Comparison {
    let rel = |d: f64, scale: f64| d / scale.max(1e-300);
    let meta_loss = meta_loss.map_or(0.0, |e| rel((auto.meta_loss - e).abs(), e.abs()));
    let mut grad = rel(auto.meta_grad.max_abs_diff(meta_grad), meta_grad.max_abs());
    if let (Some(a), Some(e)) = (&auto.inner_lr_grad, lr_grad) {
        grad = grad.max(rel(a.max_abs_diff(e), e.max_abs()));
    }
    let fast_err = fast.map_or(0.0, |f| {
        auto.fast_weights
            .iter()
            .zip(f)
            .map(|(a, r)| rel(a.max_abs_diff(r), r.max_abs()))
            .fold(0.0, f64::max)
    });
    let same_tasks = fast.is_none_or(|f| f.len() == auto.fast_weights.len());
    let same_grads = auto.inner_lr_grad.is_some() == lr_grad.is_some();
    Comparison {
        against: against.to_string(),
        meta_loss_rel_error: meta_loss,
        meta_grad_rel_error: grad,
        fast_weights_rel_error: fast_err,
        pass: same_tasks && same_grads && meta_loss <= tol && grad <= tol && fast_err <= tol,
    }
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
    let tol = tolerance.unwrap_or(match args.precision {
        Precision::F32 => 1e-4,
        Precision::F64 => 1e-9,
    });
    let problem = match AnyProblem::load(path)? {
        AnyProblem::V1(problem) => problem,
        AnyProblem::V2(problem) => return check_v2(path, problem, expected, tol, args),
    };
    let expected = expected.map(Answer::load).transpose()?;
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
    finish(path, args, tol, comparisons)
}

/// `maml check` of a version-2 problem: against central finite differences of the
/// meta-loss (f64 only: in f32 their rounding error exceeds any useful tolerance) and
/// against an expected answer if given.
fn check_v2(
    path: &Path,
    problem: ProblemV2,
    expected: Option<&Path>,
    tol: f64,
    args: BackendArgs,
) -> Result<(), CliError> {
    let expected = expected.map(AnswerV2::load).transpose()?;
    let finite_differences = args.precision == Precision::F64;
    if expected.is_none() && !finite_differences {
        return Err(CliError::Usage(format!(
            "{}: a version-2 problem has no closed form; pass --expected ANSWER, or \
             --precision f64 to check against finite differences",
            path.display()
        )));
    }
    let job = SolveV2 {
        problem,
        finite_differences,
    };
    let (auto, fd) = dispatch_with(args.backend, args.precision, args.threads, job)?;
    let mut comparisons = Vec::new();
    if let Some((grad, lr_grad)) = &fd {
        // Central differences with ε = 1e-6 in f64 are good to about 1e-8 relative.
        let fd_tol = tol.max(1e-6);
        comparisons.push(compare_v2(
            "central finite differences",
            &auto,
            None,
            grad,
            lr_grad.as_ref(),
            None,
            fd_tol,
        ));
    }
    if let Some(e) = &expected {
        comparisons.push(compare_v2(
            "expected answer",
            &auto,
            Some(e.meta_loss),
            &e.meta_grad,
            e.inner_lr_grad.as_ref(),
            Some(&e.fast_weights),
            tol,
        ));
    }
    finish(path, args, tol, comparisons)
}

fn finish(
    path: &Path,
    args: BackendArgs,
    tol: f64,
    comparisons: Vec<Comparison>,
) -> Result<(), CliError> {
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
