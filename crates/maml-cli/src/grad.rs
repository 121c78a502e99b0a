//! `maml grad` and `maml check`: one meta-gradient of a problem file.

use std::path::Path;

use burn::prelude::Backend;
use maml_backends::dispatch_with;
use maml_burn::backend::{BackendJob, Precision};
use maml_burn::maml_core::data::layers::LayeredWeights;
use maml_burn::maml_core::{Loss, Order};
use maml_burn::maml_data::closed_form;
use maml_burn::maml_data::problem::Answer;
use maml_burn::maml_data::problem::InnerLr;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::solve::finite_differences;
use maml_burn::maml_data::solve::solve;
use serde::Serialize;

use crate::error::CliError;
use crate::{BackendArgs, print_json};

/// `maml grad PROBLEM`: a problem file of any version (1: linear, 2: MLP, Meta-SGD,
/// cross-entropy, 3: conv nets on images); the answer is printed in its version's layout.
pub fn grad(path: &Path, args: BackendArgs) -> Result<(), CliError> {
    let problem = Problem::load(path)?;
    let format = problem.format;
    let job = SolveChecked {
        problem,
        finite_differences: false,
    };
    let (answer, _) = dispatch_with(args.backend, args.precision, args.threads, job)?;
    print_json(&answer.to_json(format));
    Ok(())
}

/// What a problem's solve found, or what a reference (closed form, finite differences,
/// an answer file) holds.
struct Found<'a> {
    meta_loss: Option<f64>,
    meta_grad: &'a LayeredWeights,
    inner_lr_grad: Option<&'a LayeredWeights>,
    fast_weights: Option<&'a [LayeredWeights]>,
}

impl<'a> From<&'a Answer> for Found<'a> {
    fn from(a: &'a Answer) -> Self {
        Found {
            meta_loss: Some(a.meta_loss),
            meta_grad: &a.meta_grad,
            inner_lr_grad: a.inner_lr_grad.as_ref(),
            fast_weights: Some(&a.fast_weights),
        }
    }
}

fn compare(against: &str, auto: &Found, e: &Found, tol: f64) -> Comparison {
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

/// The finite-difference step.
const FD_EPS: f64 = 1e-6;

/// The answer to a problem and, if asked, its finite-difference meta-gradient (and
/// Meta-SGD's step-size gradient).
struct SolveChecked {
    problem: Problem,
    finite_differences: bool,
}

type FiniteDifferences = (LayeredWeights, Option<LayeredWeights>);

impl BackendJob for SolveChecked {
    type Output = (Answer, Option<FiniteDifferences>);
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Output, CliError> {
        let answer = solve::<B>(&self.problem, device)?;
        let fd = self
            .finite_differences
            .then(|| finite_differences::<B>(&self.problem, FD_EPS, device))
            .transpose()?;
        Ok((answer, fd))
    }
}

/// The linear model's closed form, when the problem has one: one linear layer, one step
/// size and a squared loss.
fn closed_form_answer(problem: &Problem) -> Option<Answer> {
    let init = problem.linear_weights()?;
    let squared = matches!(problem.loss, Loss::Sse | Loss::Mse);
    let one_lr = matches!(problem.inner_lr, InnerLr::Scalar(_));
    (squared && one_lr)
        .then(|| closed_form::meta_gradient(&init, &problem.tasks, &problem.adapt_config()).into())
}

/// `maml check PROBLEM [--expected ANSWER]`: the automatic answer against the closed form
/// (the linear model with a squared loss), otherwise against central finite differences
/// of the meta-loss (f64 only: in f32 their rounding error exceeds any useful tolerance),
/// and against an expected answer if given.
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
    let problem = Problem::load(path)?;
    let expected = expected.map(Answer::load).transpose()?;
    let closed = closed_form_answer(&problem);
    // First order is not the derivative of the meta-loss (the inner gradient is held
    // constant), so finite differences check it only without inner steps.
    let finite_differences = closed.is_none()
        && args.precision == Precision::F64
        && !problem.family.reptile
        && (problem.order == Order::Second || problem.inner_steps == 0);
    if expected.is_none() && closed.is_none() && !finite_differences {
        return Err(CliError::Usage(format!(
            "{}: the problem has no closed form (only the linear model with sse or mse \
             has one); pass --expected ANSWER, or --precision f64 to check a second-order \
             problem against finite differences",
            path.display(),
        )));
    }
    let job = SolveChecked {
        problem,
        finite_differences,
    };
    let (auto, fd) = dispatch_with(args.backend, args.precision, args.threads, job)?;
    let found = Found::from(&auto);
    let mut comparisons = Vec::new();
    if let Some(closed) = &closed {
        comparisons.push(compare("closed form", &found, &closed.into(), tol));
    }
    if let Some((grad, lr_grad)) = &fd {
        let fd = Found {
            meta_loss: None,
            meta_grad: grad,
            inner_lr_grad: lr_grad.as_ref(),
            fast_weights: None,
        };
        // Central differences with ε = 1e-6 in f64 are good to about 1e-8 relative.
        comparisons.push(compare(
            "central finite differences",
            &found,
            &fd,
            tol.max(1e-6),
        ));
    }
    if let Some(e) = &expected {
        comparisons.push(compare("expected answer", &found, &e.into(), tol));
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
