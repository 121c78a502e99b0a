//! Fuzz target: problem-file parsing and validation, then the closed form on whatever
//! validates. Nothing may panic; bad input must come back as `Err`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maml_core::{Problem, closed_form};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(problem) = Problem::from_json(text, "fuzz") {
        // Keep each run small: the closed form is cubic in `in` and linear in K.
        let size: usize = problem.tasks.iter().map(|t| t.support.len() + t.query.len()).sum();
        if problem.weight[0].len() <= 64 && problem.inner_steps <= 64 && size <= 4096 {
            let answer = closed_form::meta_gradient(
                &problem.initial_weights(),
                &problem.tasks,
                &problem.adapt_config(),
            );
            let _ = answer.meta_loss;
            let _ = closed_form::optimum(&problem.tasks, problem.bias.len(), &problem.adapt_config());
        }
    }
});
