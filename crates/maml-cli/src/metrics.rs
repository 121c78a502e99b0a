//! `metrics.csv`: one row per meta step, written whole at every checkpoint and read back
//! on `--resume`, so that a resumed run's file is the same as an uninterrupted one's.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::CliError;

/// One meta step's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The meta step (0-based).
    pub step: usize,
    /// Mean query loss after adaptation.
    pub meta_loss: f64,
    /// Mean query loss before adaptation (NaN when not computed: a data-parallel step).
    pub before: f64,
    /// Classification: the mean query accuracy after adaptation.
    pub accuracy: Option<f64>,
    /// The linear model on a fixed task set: the relative distance of the weights before
    /// the step to the exact MAML optimum and to the first-order fixed point.
    pub distances: Option<(f64, f64)>,
}

const ACCURACY: &str = "query_accuracy";
const DISTANCES: [&str; 2] = [
    "rel_dist_second_order_optimum",
    "rel_dist_first_order_point",
];

/// The CSV text of `rows`: `step,meta_loss,query_loss_before,query_loss_after`, then
/// `query_accuracy` for classification and the two distances when known.
pub fn metrics_csv(rows: &[Row]) -> String {
    let accuracy = rows.iter().any(|r| r.accuracy.is_some());
    let distances = rows.iter().any(|r| r.distances.is_some());
    let mut csv = String::from("step,meta_loss,query_loss_before,query_loss_after");
    if accuracy {
        let _ = write!(csv, ",{ACCURACY}");
    }
    if distances {
        let _ = write!(csv, ",{},{}", DISTANCES[0], DISTANCES[1]);
    }
    csv.push('\n');
    for r in rows {
        let _ = write!(
            csv,
            "{},{:e},{:e},{:e}",
            r.step, r.meta_loss, r.before, r.meta_loss
        );
        if accuracy {
            match r.accuracy {
                Some(a) => {
                    let _ = write!(csv, ",{a}");
                }
                None => csv.push(','),
            }
        }
        if distances {
            match r.distances {
                Some((a, b)) => {
                    let _ = write!(csv, ",{a:e},{b:e}");
                }
                None => csv.push_str(",,"),
            }
        }
        csv.push('\n');
    }
    csv
}

/// Reads the rows of a `metrics.csv` before step `until` (a resumed run's checkpoint
/// step), by the names of its columns.
pub fn parse_metrics(text: &str, path: &Path, until: usize) -> Result<Vec<Row>, CliError> {
    let bad = |line: usize, why: &str| {
        CliError::Usage(format!(
            "{}: line {line} is not a metrics row ({why})",
            path.display()
        ))
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    if header.len() < 3 || header[..3] != ["step", "meta_loss", "query_loss_before"] {
        return Err(bad(
            1,
            "expected the header step,meta_loss,query_loss_before,...",
        ));
    }
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (accuracy, second, first) = (column(ACCURACY), column(DISTANCES[0]), column(DISTANCES[1]));
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err(bad(
                i + 2,
                &format!("{} columns, not {}", cells.len(), header.len()),
            ));
        }
        let number = |c: usize| -> Result<Option<f64>, CliError> {
            match cells[c] {
                "" => Ok(None),
                cell => cell
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| bad(i + 2, &format!("{cell:?} is not a number"))),
            }
        };
        let required = |c: usize| number(c)?.ok_or_else(|| bad(i + 2, "an empty cell"));
        let step = required(0)?;
        if step < 0.0 || step.fract() != 0.0 {
            return Err(bad(i + 2, &format!("step {step} is not a whole number")));
        }
        let step = step as usize;
        if step >= until {
            break;
        }
        let distances = match (second.map(number), first.map(number)) {
            (Some(a), Some(b)) => a?.zip(b?),
            _ => None,
        };
        rows.push(Row {
            step,
            meta_loss: required(1)?,
            before: required(2)?,
            accuracy: accuracy.map(number).transpose()?.flatten(),
            distances,
        });
    }
    Ok(rows)
}
