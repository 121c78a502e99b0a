//! Bad problems are rejected with errors that name the value and where it is.

use maml_data::problem::Problem;

fn problem_error(json: &str) -> String {
    Problem::from_json(json, "test.json")
        .unwrap_err()
        .to_string()
}

const GOOD_TASK: &str =
    r#"{"support": {"x": [[1.0, 2.0]], "y": [[0.5]]}, "query": {"x": [[2.0, 0.0]]}}"#;

fn with(weight: &str, bias: &str, tasks: &str, lr: &str, order: &str) -> String {
    format!(
        r#"{{"weight": {weight}, "bias": {bias}, "tasks": {tasks}, "inner_lr": {lr},
            "inner_steps": 1, "order": "{order}", "loss": "sse"}}"#
    )
}

#[test]
fn a_good_problem_parses() {
    Problem::from_json(
        &with(
            "[[1.0, 2.0]]",
            "[0.0]",
            &format!("[{GOOD_TASK}]"),
            "0.1",
            "second",
        ),
        "t",
    )
    .unwrap();
}

#[test]
fn errors_name_the_bad_value_and_its_place() {
    let cases = [
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0, 1.0]",
                &format!("[{GOOD_TASK}]"),
                "0.1",
                "second",
            ),
            "problem.bias",
        ),
        (
            with(
                "[[1.0, 2.0], [1.0]]",
                "[0.0, 1.0]",
                &format!("[{GOOD_TASK}]"),
                "0.1",
                "second",
            ),
            "problem.weight[1]",
        ),
        (
            with("[[1.0, 2.0]]", "[0.0]", "[]", "0.1", "second"),
            "tasks is empty",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                &format!("[{GOOD_TASK}]"),
                "-0.1",
                "second",
            ),
            "inner_lr = -0.1",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                &format!("[{GOOD_TASK}]"),
                "0.0",
                "second",
            ),
            "inner_lr = 0",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                &format!("[{GOOD_TASK}]"),
                "0.1",
                "third",
            ),
            "third",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                r#"[{"support": {"x": [[1.0]]}, "query": {"x": [[2.0, 0.0]]}}]"#,
                "0.1",
                "first",
            ),
            "tasks[0].support.x[0]",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                r#"[{"support": {"x": []}, "query": {"x": [[2.0, 0.0]]}}]"#,
                "0.1",
                "first",
            ),
            "tasks[0].support.x is empty",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                r#"[{"support": {"x": [[1.0, 1.0]], "y": [[1.0, 2.0]]}, "query": {"x": [[2.0, 0.0]]}}]"#,
                "0.1",
                "first",
            ),
            "tasks[0].support.y[0]",
        ),
        (
            with(
                "[[1.0, 2.0]]",
                "[0.0]",
                r#"[{"support": {"x": [[1.0, 1.0]], "y": [[1.0], [2.0]]}, "query": {"x": [[2.0, 0.0]]}}]"#,
                "0.1",
                "first",
            ),
            "2 target rows for 1 feature rows",
        ),
        (
            r#"{"weight": [[1.0]], "bias": [0.0], "tasks": ["#.to_string(),
            "line 1, column",
        ),
    ];
    for (json, needle) in cases {
        let err = problem_error(&json);
        assert!(
            err.contains(needle),
            "error {err:?} should contain {needle:?}"
        );
    }
}
