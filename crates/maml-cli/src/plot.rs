//! SVG line plots (plotters' SVG backend: no fonts or system libraries needed).
//!
//! Every plot gets numbered axes whatever its data: an empty plot, a constant series, a
//! single point and a series within one decade all get a finite, non-degenerate range.
//! The y axis is logarithmic only where the caller allows it and the data spans at
//! least two decades (a log axis within one decade would get no tick labels); the log
//! axis is drawn as `log10(y)` on a linear axis labelled with `y`, so its tick labels
//! never depend on how many powers of ten the range holds. An x axis whose points are
//! all whole numbers (steps) is labelled with whole numbers only.

use std::path::Path;

use maml_burn::maml_core::data::write_atomic;
use plotters::prelude::*;

use crate::error::CliError;

/// The number of points above which the meta-loss plots add a moving average
/// ([`with_moving_average`]).
pub const MOVING_AVERAGE_FROM: usize = 50;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A line.
    Line,
    /// A thin, light line (the raw values behind a moving average).
    Faint,
    /// A marker at each point.
    Markers,
}

/// One named curve of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// How the points are drawn.
    pub style: Style,
}

const COLORS: [RGBColor; 8] = [
    BLACK,
    BLUE,
    RGBColor(0, 130, 200),
    RGBColor(100, 180, 255),
    RED,
    RGBColor(230, 120, 0),
    RGBColor(255, 180, 120),
    GREEN,
];

/// The y range (as a ratio of largest to smallest value) from which a log axis is used.
const LOG_FROM_RATIO: f64 = 100.0;

/// Draws `series` into an SVG file at `path` (written atomically). The y axis is
/// logarithmic when `log_y` allows it and every finite y is positive and the values
/// span at least two decades; linear otherwise.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), CliError> {
    let svg = render(title, x_label, y_label, series, log_y)
        .map_err(|e| CliError::Plot(format!("{}: {e}", path.display())))?;
    write_atomic(path, svg.as_bytes())?;
    Ok(())
}

/// The SVG text of [`line_plot`]'s figure.
pub fn render(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        draw(&root, title, x_label, y_label, series, log_y).map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Each line series of more than `min_points` points as two: its raw values (faint)
/// and their centred moving average over about a twentieth of the points (an odd window
/// of at most 201), so that a trend shows through per-step noise where it happens, not
/// half a window later as a trailing average would draw it; the window narrows to the
/// points there are at both ends. Other series are kept as they are.
pub fn with_moving_average(series: Vec<Series>, min_points: usize) -> Vec<Series> {
    let mut out = Vec::with_capacity(series.len() * 2);
    for s in series {
        if s.style != Style::Line || s.points.len() <= min_points {
            out.push(s);
            continue;
        }
        let n = s.points.len();
        let half = (n / 40).clamp(1, 100);
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0.0);
        for &(_, y) in &s.points {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + y);
        }
        let averaged = s
            .points
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| {
                let (lo, hi) = (i.saturating_sub(half), (i + half).min(n - 1));
                (x, (prefix[hi + 1] - prefix[lo]) / (hi - lo + 1) as f64)
            })
            .collect();
        out.push(Series {
            name: format!(
                "{} (centred moving average of {} steps)",
                s.name,
                2 * half + 1
            ),
            points: averaged,
            style: Style::Line,
        });
        out.push(Series {
            name: format!("{} (per step)", s.name),
            style: Style::Faint,
            ..s
        });
    }
    out
}

/// Axis ranges of a figure: `[x0, x1]` and `[y0, y1]`, both finite with `x0 < x1` and
/// `y0 < y1`, with `y` in log10 units when `log`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    log: bool,
    whole_x: bool,
}

impl Frame {
    fn of(series: &[Series], log_y: bool) -> Self {
        let finite = || {
            series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|p| p.0.is_finite() && p.1.is_finite())
        };
        let span = |v: &mut dyn Iterator<Item = f64>| {
            v.fold(None, |r: Option<(f64, f64)>, a| {
                Some(r.map_or((a, a), |(lo, hi)| (lo.min(a), hi.max(a))))
            })
        };
        let x = span(&mut finite().map(|p| p.0));
        let y = span(&mut finite().map(|p| p.1));
        let log = log_y && matches!(y, Some((lo, hi)) if lo > 0.0 && hi / lo >= LOG_FROM_RATIO);
        let whole_x = finite().all(|p| p.0.fract() == 0.0);
        let y = if log {
            y.map(|(lo, hi)| (lo.log10(), hi.log10()))
        } else {
            y
        };
        Frame {
            // A single step gets the whole steps either side of it.
            x: widen(x, 0.0, if whole_x { Some(1.0) } else { None }),
            y: widen(y, 0.05, None),
            log,
            whole_x,
        }
    }
}

/// A finite range `lo < hi` around `span` (`0..1` for none), padded by `pad` of its
/// width; a single value gets a range of `±half` around it (default: ±10 % of the
/// value, or ±1 where that is zero). Values are clamped to ±f64::MAX / 4 first, so that
/// the width of the range is finite too (plotters' tick search needs it).
fn widen(span: Option<(f64, f64)>, pad: f64, half: Option<f64>) -> (f64, f64) {
    const LIMIT: f64 = f64::MAX / 4.0;
    let Some((lo, hi)) = span else {
        return (0.0, 1.0);
    };
    let (lo, hi) = (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT));
    let (a, b) = if hi > lo {
        let p = (hi - lo) * pad;
        (lo - p, hi + p)
    } else {
        let half = half.unwrap_or(lo.abs() * 0.1);
        (lo - half, lo + half)
    };
    if a < b { (a, b) } else { (lo - 1.0, lo + 1.0) }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let frame = Frame::of(series, log_y);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(frame.x.0..frame.x.1, frame.y.0..frame.y.1)?;
    let x_fmt = |x: &f64| {
        if frame.whole_x {
            // Whole steps only: ticks between them stay unlabelled.
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        } else {
            tick(*x, frame.x.1 - frame.x.0)
        }
    };
    let y_fmt = |y: &f64| {
        if frame.log {
            // A tick at log10 value v is labelled 10^v, to the digits its neighbours
            // (about a tenth of the range apart) need.
            let v = 10f64.powf(*y);
            tick(
                v,
                v * (10f64.powf((frame.y.1 - frame.y.0) / 10.0) - 1.0) * 10.0,
            )
        } else {
            tick(*y, frame.y.1 - frame.y.0)
        }
    };
    // No more x labels than there are whole steps in the range, so that they fall on
    // whole numbers.
    let x_labels = if frame.whole_x {
        ((frame.x.1 - frame.x.0).floor() as usize + 1).clamp(2, 10)
    } else {
        10
    };
    let y_desc = if frame.log {
        format!("{y_label} (log scale)")
    } else {
        y_label.to_string()
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_desc)
        .x_labels(x_labels)
        .y_labels(10)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;
    let to_frame = |&(x, y): &(f64, f64)| {
        let y = if frame.log { y.log10() } else { y };
        (x.is_finite() && y.is_finite()).then_some((x, y))
    };
    // A faint series (the raw values behind a moving average) takes the colour of the
    // series before it.
    let mut lines = 0;
    for s in series {
        if s.style != Style::Faint || lines == 0 {
            lines += 1;
        }
        let color = COLORS[(lines - 1) % COLORS.len()];
        let points: Vec<(f64, f64)> = s.points.iter().filter_map(to_frame).collect();
        match s.style {
            Style::Markers => {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
            Style::Line | Style::Faint => {
                let style = if s.style == Style::Faint {
                    color.mix(0.3).stroke_width(1)
                } else {
                    color.stroke_width(2)
                };
                chart
                    .draw_series(LineSeries::new(points, style))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// A tick label for a value on an axis whose range is `width` wide: plain decimals from
/// 1e-3 to 1e5 (as many as the tick spacing needs), scientific notation outside.
fn tick(y: f64, width: f64) -> String {
    // Ticks are about a tenth of the range apart: one more digit than that spacing.
    let spacing = (width / 10.0).max(f64::MIN_POSITIVE).log10().floor() as i32;
    if y == 0.0 {
        return "0".to_string();
    }
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if (1e-3..1e5).contains(&y.abs()) {
        let decimals = (1 - spacing).clamp(0, 12) as usize;
        trim(format!("{y:.decimals$}"))
    } else {
        let magnitude = y.abs().log10().floor() as i32;
        let digits = (magnitude - spacing + 1).clamp(1, 12) as usize;
        let s = format!("{y:.digits$e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim(mantissa.to_string())),
            None => s,
        }
    }
}
