//! SVG line plots (plotters' SVG backend: no fonts or system libraries needed).

use std::path::Path;

use maml_burn::maml_core::data::write_atomic;
use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::error::CliError;

/// One named curve of `(x, y)` points.
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Draw the points as markers instead of a line.
    pub markers: bool,
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

/// Draws `series` into an SVG file at `path` (written atomically), log-scaled in y when
/// `log_y` and every y is positive.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), CliError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        draw(&root, title, x_label, y_label, series, log_y)
            .map_err(|e| CliError::Plot(format!("{}: {e}", path.display())))?;
    }
    write_atomic(path, svg.as_bytes())?;
    Ok(())
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
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
    };
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut builder = ChartBuilder::on(root);
    let chart = builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if log_y && y0 > 0.0 {
        let y1 = if y1 > y0 { y1 } else { y0 * 10.0 };
        let mut chart = chart.build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            // Labels between decades too (2, 5, 20, ...), not only at powers of ten.
            .y_labels(15)
            .y_label_formatter(&|y| tick(*y))
            .draw()?;
        draw_series(&mut chart, series)
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-12);
        let mut chart = chart.build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()?;
        draw_series(&mut chart, series)
    }?;
    root.present()?;
    Ok(())
}

/// A tick label: plain decimals from 1e-3 to 1e4, scientific notation outside.
fn tick(y: f64) -> String {
    if y == 0.0 || (1e-3..1e4).contains(&y.abs()) {
        let s = format!("{y:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{y:.0e}")
    }
}

/// Draws every series and the legend, on a linear or a logarithmic y axis alike.
fn draw_series<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = color.stroke_width(2);
        if s.markers {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?
                .label(s.name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
}
