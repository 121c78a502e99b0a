//! `maml grad` and `maml check`: one meta-gradient of a problem file.

use std::path::Path;

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::{BackendJob, Precision};
use maml_burn::maml_core::{
    Answer, AnswerV2, AnswerV3, AnyAnswer, AnyProblem, LayeredWeights, MlpWeights, Order, Problem,
    ProblemV2, ProblemV3, closed_form, finite_differences_v2, finite_differences_v3, solve,
    solve_v2, solve_v3,
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

/// `maml grad PROBLEM`: version 1 (linear), 2 (MLP, Meta-SGD, cross-entropy) or 3 (conv
/// nets on images).
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

/// Weights of any layered layout that a comparison can measure.
trait Compared {
    fn max_abs(&self) -> f64;
    fn max_abs_diff(&self, other: &Self) -> f64;
}

impl Compared for MlpWeights {
    fn max_abs(&self) -> f64 {
        MlpWeights::max_abs(self)
    }
    fn max_abs_diff(&self, other: &Self) -> f64 {
        MlpWeights::max_abs_diff(self, other)
    }
}

impl Compared for LayeredWeights {
    fn max_abs(&self) -> f64 {
        LayeredWeights::max_abs(self)
    }
    fn max_abs_diff(&self, other: &Self) -> f64 {
        LayeredWeights::max_abs_diff(self, other)
    }
}

/// What a problem's solve found (version 2 or 3), or what an answer file holds.
struct Found<'a, W> {
    meta_loss: Option<f64>,
    meta_grad: &'a W,
    inner_lr_grad: Option<&'a W>,
    fast_weights: Option<&'a [W]>,
}

impl<'a> Found<'a, MlpWeights> {
    fn v2(a: &'a AnswerV2) -> Self {
        Found {
            meta_loss: Some(a.meta_loss),
            meta_grad: &a.meta_grad,
            inner_lr_grad: a.inner_lr_grad.as_ref(),
            fast_weights: Some(&a.fast_weights),
        }
    }
}

impl<'a> Found<'a, LayeredWeights> {
    fn v3(a: &'a AnswerV3) -> Self {
        Found {
            meta_loss: Some(a.meta_loss),
            meta_grad: &a.meta_grad,
            inner_lr_grad: a.inner_lr_grad.as_ref(),
            fast_weights: Some(&a.fast_weights),
        }
    }
}

fn compare_layers<W: Compared>(
    against: &str,
    auto: &Found<W>,
    e: &Found<W>,
    tol: f64,
) -> Comparison {
    let rel = |d: f64, scale: f64| d / scale.max(1e-300);
    let meta_loss = match (auto.meta_loss, e.meta_loss) {
        (Some(a), Some(e)) => rel((a - e).abs(), e.abs()),
        _ => 0.0,
    };
    let mut grad = rel(
        auto.meta_grad.max_abs_diff(e.meta_grad),
        e.meta_grad.max_abs(),
    );
    if let (Some(a), Some(e)) = (auto.inner_lr_grad, e.inner_lr_grad) {
        grad = grad.max(rel(a.max_abs_diff(e), e.max_abs()));
    }
    let (fast_err, same_tasks) = match (auto.fast_weights, e.fast_weights) {
        (Some(a), Some(f)) => (
            a.iter()
                .zip(f)
                .map(|(a, r)| rel(a.max_abs_diff(r), r.max_abs()))
                .fold(0.0, f64::max),
            a.len() == f.len(),
        ),
        _ => (0.0, true),
    };
    let same_grads = auto.inner_lr_grad.is_some() == e.inner_lr_grad.is_some();
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
        AnyProblem::V3(problem) => return check_v3(path, problem, expected, tol, args),
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
    // First order is not the derivative of the meta-loss (the inner gradient is held
    // constant), so finite differences check it only without inner steps.
    let finite_differences = args.precision == Precision::F64
        && (problem.order == Order::Second || problem.inner_steps == 0);
    if expected.is_none() && !finite_differences {
        return Err(CliError::Usage(format!(
            "{}: a version-2 problem has no closed form; pass --expected ANSWER, or \
             --precision f64 to check a second-order problem against finite differences",
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
        let fd = Found {
            meta_loss: None,
            meta_grad: grad,
            inner_lr_grad: lr_grad.as_ref(),
            fast_weights: None,
        };
        comparisons.push(compare_layers(
            "central finite differences",
            &Found::v2(&auto),
            &fd,
            fd_tol,
        ));
    }
    if let Some(e) = &expected {
        comparisons.push(compare_layers(
            "expected answer",
            &Found::v2(&auto),
            &Found::v2(e),
            tol,
        ));
    }
    finish(path, args, tol, comparisons)
}

/// The automatic answer to a version-3 problem and the finite-difference meta-gradient.
struct SolveV3 {
    problem: ProblemV3,
    finite_differences: bool,
}

impl BackendJob for SolveV3 {
    type Output = (AnswerV3, Option<(LayeredWeights, Option<LayeredWeights>)>);
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Output, CliError> {
        let answer = solve_v3::<B>(&self.problem, device)?;
        let fd = self
            .finite_differences
            .then(|| finite_differences_v3::<B>(&self.problem, 1e-6, device))
            .transpose()?;
        Ok((answer, fd))
    }
}

/// `maml check` of a version-3 problem, as of version 2.
fn check_v3(
    path: &Path,
    problem: ProblemV3,
    expected: Option<&Path>,
    tol: f64,
    args: BackendArgs,
) -> Result<(), CliError> {
    let expected = expected.map(AnswerV3::load).transpose()?;
    // First order is not the derivative of the meta-loss (the inner gradient is held
    // constant), so finite differences check it only without inner steps.
    let finite_differences = args.precision == Precision::F64
        && (problem.order == Order::Second || problem.inner_steps == 0);
    if expected.is_none() && !finite_differences {
        return Err(CliError::Usage(format!(
            "{}: a version-3 problem has no closed form; pass --expected ANSWER, or \
             --precision f64 to check a second-order problem against finite differences",
            path.display()
        )));
    }
    let job = SolveV3 {
        problem,
        finite_differences,
    };
    let (auto, fd) = dispatch_with(args.backend, args.precision, args.threads, job)?;
    let mut comparisons = Vec::new();
    if let Some((grad, lr_grad)) = &fd {
        let fd = Found {
            meta_loss: None,
            meta_grad: grad,
            inner_lr_grad: lr_grad.as_ref(),
            fast_weights: None,
        };
        comparisons.push(compare_layers(
            "central finite differences",
            &Found::v3(&auto),
            &fd,
            tol.max(1e-6),
        ));
    }
    if let Some(e) = &expected {
        comparisons.push(compare_layers(
            "expected answer",
            &Found::v3(&auto),
            &Found::v3(e),
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
