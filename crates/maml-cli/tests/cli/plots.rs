//! The plots: every degenerate series (empty, constant, one point, within one decade)
//! is drawn, promptly and with numbered axes; `maml train --meta-steps 0` returns.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use maml_cli::plot::{Series, Style, render, with_moving_average};

/// Far above the milliseconds a plot takes: only a hang (an endless tick search) gets
/// near it.
const HANG: Duration = Duration::from_secs(60);

fn line(points: Vec<(f64, f64)>) -> Series {
    Series {
        name: "series".into(),
        points,
        style: Style::Line,
    }
}

/// Renders on another thread; fails if it has not finished within [`HANG`].
fn render_within_limit(series: Vec<Series>, log_y: bool) -> String {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(render("title", "meta step", "loss", &series, log_y));
    });
    match receive.recv_timeout(HANG) {
        Ok(svg) => svg.expect("the plot draws"),
        Err(_) => panic!("drawing the plot did not finish within {HANG:?}"),
    }
}

/// The SVG's `<text>` elements as `(x, y, text)`.
fn texts(svg: &str) -> Vec<(f64, f64, String)> {
    let attr = |t: &str, name: &str| -> Option<f64> {
        t.split(&format!(" {name}=\""))
            .nth(1)?
            .split('"')
            .next()?
            .parse()
            .ok()
    };
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = t
                .split_once('>')?
                .1
                .split("</text>")
                .next()?
                .trim()
                .to_string();
            Some((attr(t, "x")?, attr(t, "y")?, body))
        })
        .collect()
}

/// The y axis' tick labels: left of the plot area, which starts 15 px (margin) + 70 px
/// (label area) from the left of the 800 x 500 figure.
fn y_labels(svg: &str) -> Vec<String> {
    texts(svg)
        .into_iter()
        .filter(|t| t.0 < 85.0)
        .map(|t| t.2)
        .collect()
}

/// The x axis' tick labels: below the plot area, which ends 15 px (margin) + 40 px
/// (label area) above the bottom.
fn x_labels(svg: &str) -> Vec<String> {
    texts(svg)
        .into_iter()
        .filter(|t| t.0 >= 85.0 && t.1 > 445.0)
        .map(|t| t.2)
        .collect()
}

fn numbers(labels: &[String]) -> Vec<f64> {
    labels
        .iter()
        .filter_map(|l| l.parse::<f64>().ok())
        .collect()
}

#[test]
fn degenerate_series_draw_promptly_with_numbered_axes() {
    let cases: Vec<(&str, Vec<Series>)> = vec![
        ("no series", vec![]),
        ("an empty series", vec![line(vec![])]),
        (
            "a constant series",
            vec![line((0..30).map(|i| (i as f64, 0.25)).collect())],
        ),
        ("one point", vec![line(vec![(0.0, 3.0)])]),
        (
            "one decade",
            vec![line(
                (0..4).map(|i| (i as f64, 0.5 - 0.1 * i as f64)).collect(),
            )],
        ),
        ("zero", vec![line(vec![(0.0, 0.0), (1.0, 0.0)])]),
        (
            "a non-finite value",
            vec![line(vec![(0.0, f64::NAN), (1.0, f64::INFINITY)])],
        ),
        (
            "the ends of f64",
            vec![line(vec![(0.0, -f64::MAX), (1.0, f64::MAX)])],
        ),
        ("one huge value", vec![line(vec![(0.0, f64::MAX)])]),
        ("one subnormal value", vec![line(vec![(0.0, 5e-324)])]),
        (
            "six decades",
            vec![line((0..7).map(|i| (i as f64, 10f64.powi(-i))).collect())],
        ),
    ];
    for (what, series) in cases {
        for log_y in [true, false] {
            let svg = render_within_limit(series.clone(), log_y);
            let y_ticks = numbers(&y_labels(&svg));
            assert!(
                y_ticks.len() >= 3,
                "{what} (log_y {log_y}): y tick labels {y_ticks:?} in {:?}",
                texts(&svg)
            );
            let mut distinct = y_ticks.clone();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                y_ticks.len(),
                "{what}: repeated y labels {y_ticks:?}"
            );
            let x_ticks = numbers(&x_labels(&svg));
            assert!(
                x_ticks.len() >= 2,
                "{what} (log_y {log_y}): x tick labels {x_ticks:?} in {:?}",
                texts(&svg)
            );
        }
    }
}

#[test]
fn whole_steps_are_labelled_with_whole_numbers() {
    for n in [1usize, 2, 3, 7, 300] {
        let series = vec![line((1..=n).map(|i| (i as f64, 1.0 / i as f64)).collect())];
        let svg = render_within_limit(series, true);
        let labels: Vec<String> = x_labels(&svg)
            .into_iter()
            .filter(|t| t.parse::<f64>().is_ok())
            .collect();
        assert!(labels.len() >= 2, "{n} steps: x labels {labels:?}");
        for label in &labels {
            assert!(
                !label.contains('.') && !label.contains('e'),
                "{n} steps: x label {label:?} is not a whole number ({labels:?})"
            );
        }
    }
}

#[test]
fn the_moving_average_is_the_mean_of_the_centred_window() {
    let raw: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, (i % 2) as f64)).collect();
    let out = with_moving_average(vec![line(raw.clone())], 50);
    assert_eq!(out.len(), 2, "an average and the raw series");
    let (average, per_step) = (&out[0], &out[1]);
    assert_eq!(per_step.points, raw);
    assert_eq!(per_step.style, Style::Faint);
    assert!(average.name.contains("of 5 steps"), "{}", average.name);
    // A window of 5 steps (100 / 40 = 2 on each side) centred on each step of 0, 1, 0,
    // 1, ...: two or three ones in five inside; at the ends the window holds the three
    // or four steps there are.
    for (i, &(x, y)) in average.points.iter().enumerate() {
        assert_eq!(x, i as f64);
        let window = i.saturating_sub(2)..=(i + 2).min(99);
        let ones = window.clone().filter(|k| k % 2 == 1).count();
        let want = ones as f64 / window.count() as f64;
        assert!((y - want).abs() < 1e-12, "step {i}: {y}, want {want}");
    }
    assert_eq!(average.points[0].1, 1.0 / 3.0, "steps 0, 1, 2");
    assert_eq!(average.points[99].1, 2.0 / 3.0, "steps 97, 98, 99");
    // Short series are drawn as they are.
    assert_eq!(
        with_moving_average(vec![line(raw[..10].to_vec())], 50).len(),
        1
    );
}

#[test]
fn training_for_zero_meta_steps_returns_with_every_plot() {
    let dir = crate::train::tmp("zero");
    let mut child = Command::new(env!("CARGO_BIN_EXE_maml"))
        .args([
            "train",
            "--in",
            "2",
            "--meta-steps",
            "0",
            "--eval-tasks",
            "5",
        ])
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the maml binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on maml") {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("maml train --meta-steps 0 did not return within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "maml train --meta-steps 0 failed: {status}"
    );
    assert!(dir.join("meta_loss.svg").is_file(), "no meta_loss.svg");
    let _ = std::fs::remove_dir_all(&dir);
}
