//! Fuzz target: problem-file parsing and validation, then the closed form on whatever
//! validates. Nothing may panic; bad input must come back as `Err`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maml_core::{InnerLr, Loss, Problem, closed_form};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(problem) = Problem::from_json(text, "fuzz") else {
        return;
    };
    // The closed form is the linear model's, with one step size and a squared loss.
    let Some(init) = problem.linear_weights() else {
        return;
    };
    if problem.loss == Loss::CrossEntropy || matches!(problem.inner_lr, InnerLr::PerParameter(_)) {
        return;
    }
    // Keep each run small: the closed form is cubic in `in` and linear in K.
    let size: usize = problem.tasks.iter().map(|t| t.support.len() + t.query.len()).sum();
    if init.d_in() <= 64 && problem.inner_steps <= 64 && size <= 4096 {
        let adapt = problem.adapt_config();
        let answer = closed_form::meta_gradient(&init, &problem.tasks, &adapt);
        let _ = answer.meta_loss;
        let _ = closed_form::optimum(&problem.tasks, init.d_out(), &adapt);
    }
});
