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
        AnyProblem::V2(problem) => return check_layered(path, problem, expected, tol, args),
        AnyProblem::V3(problem) => return check_layered(path, problem, expected, tol, args),
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

/// A problem without a closed form (versions 2 and 3): solved on a backend, checked
/// against finite differences and an answer file of its version.
trait Checked: Send + Sized {
    /// The answer file's type.
    type Answer: Send;
    /// The layout of its meta-gradient and fast weights.
    type Weights: Compared + Send;
    /// The file format's version, for messages.
    const VERSION: u8;
    fn order(&self) -> Order;
    fn inner_steps(&self) -> usize;
    fn load_answer(path: &Path) -> Result<Self::Answer, CliError>;
    fn found(answer: &Self::Answer) -> Found<'_, Self::Weights>;
    fn solve<B: Backend>(&self, device: &B::Device) -> Result<Self::Answer, CliError>;
    /// The meta-gradient and Meta-SGD's step-size gradient by central differences.
    fn finite_differences<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<(Self::Weights, Option<Self::Weights>), CliError>;
}

impl Checked for ProblemV2 {
    type Answer = AnswerV2;
    type Weights = MlpWeights;
    const VERSION: u8 = 2;
    fn order(&self) -> Order {
        self.order
    }
    fn inner_steps(&self) -> usize {
        self.inner_steps
    }
    fn load_answer(path: &Path) -> Result<AnswerV2, CliError> {
        Ok(AnswerV2::load(path)?)
    }
    fn found(a: &AnswerV2) -> Found<'_, MlpWeights> {
        Found {
            meta_loss: Some(a.meta_loss),
            meta_grad: &a.meta_grad,
            inner_lr_grad: a.inner_lr_grad.as_ref(),
            fast_weights: Some(&a.fast_weights),
        }
    }
    fn solve<B: Backend>(&self, device: &B::Device) -> Result<AnswerV2, CliError> {
        Ok(solve_v2::<B>(self, device)?)
    }
    fn finite_differences<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<(MlpWeights, Option<MlpWeights>), CliError> {
        Ok(finite_differences_v2::<B>(self, FD_EPS, device)?)
    }
}

impl Checked for ProblemV3 {
    type Answer = AnswerV3;
    type Weights = LayeredWeights;
    const VERSION: u8 = 3;
    fn order(&self) -> Order {
        self.order
    }
    fn inner_steps(&self) -> usize {
        self.inner_steps
    }
    fn load_answer(path: &Path) -> Result<AnswerV3, CliError> {
        Ok(AnswerV3::load(path)?)
    }
    fn found(a: &AnswerV3) -> Found<'_, LayeredWeights> {
        Found {
            meta_loss: Some(a.meta_loss),
            meta_grad: &a.meta_grad,
            inner_lr_grad: a.inner_lr_grad.as_ref(),
            fast_weights: Some(&a.fast_weights),
        }
    }
    fn solve<B: Backend>(&self, device: &B::Device) -> Result<AnswerV3, CliError> {
        Ok(solve_v3::<B>(self, device)?)
    }
    fn finite_differences<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<(LayeredWeights, Option<LayeredWeights>), CliError> {
        Ok(finite_differences_v3::<B>(self, FD_EPS, device)?)
    }
}

/// The finite-difference step.
const FD_EPS: f64 = 1e-6;

/// The automatic answer to a problem and, if asked, its finite-difference meta-gradient.
struct SolveChecked<P> {
    problem: P,
    finite_differences: bool,
}

type Solved<P> = (
    <P as Checked>::Answer,
    Option<(<P as Checked>::Weights, Option<<P as Checked>::Weights>)>,
);

impl<P: Checked> BackendJob for SolveChecked<P> {
    type Output = Solved<P>;
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Output, CliError> {
        let answer = self.problem.solve::<B>(device)?;
        let fd = self
            .finite_differences
            .then(|| self.problem.finite_differences::<B>(device))
            .transpose()?;
        Ok((answer, fd))
    }
}

/// `maml check` of a version-2 or version-3 problem: against central finite differences
/// of the meta-loss (f64 only: in f32 their rounding error exceeds any useful tolerance)
/// and against an expected answer if given.
fn check_layered<P: Checked>(
    path: &Path,
    problem: P,
    expected: Option<&Path>,
    tol: f64,
    args: BackendArgs,
) -> Result<(), CliError> {
    let expected = expected.map(P::load_answer).transpose()?;
    // First order is not the derivative of the meta-loss (the inner gradient is held
    // constant), so finite differences check it only without inner steps.
    let finite_differences = args.precision == Precision::F64
        && (problem.order() == Order::Second || problem.inner_steps() == 0);
    if expected.is_none() && !finite_differences {
        return Err(CliError::Usage(format!(
            "{}: a version-{} problem has no closed form; pass --expected ANSWER, or \
             --precision f64 to check a second-order problem against finite differences",
            path.display(),
            P::VERSION
        )));
    }
    let job = SolveChecked {
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
        // Central differences with ε = 1e-6 in f64 are good to about 1e-8 relative.
        comparisons.push(compare_layers(
            "central finite differences",
            &P::found(&auto),
            &fd,
            tol.max(1e-6),
        ));
    }
    if let Some(e) = &expected {
        comparisons.push(compare_layers(
            "expected answer",
            &P::found(&auto),
            &P::found(e),
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
