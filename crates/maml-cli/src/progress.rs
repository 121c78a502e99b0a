//! The training progress bar, shared by every model's `maml train`.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over `steps` steps, at `start`, its line starting with `label`.
pub fn progress(steps: usize, start: usize, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64).with_position(start as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{bar:30}} {{pos}}/{{len}} loss {{msg}} [{{elapsed_precise}}, {{per_sec}}, eta {{eta}}]"
        ))
        .expect("the template is valid"),
    );
    bar
}

/// The progress bar's message: the meta-loss, and a warning when it keeps rising.
pub fn loss_message(meta_loss: f64, rising: usize) -> String {
    if rising >= 20 {
        format!("{meta_loss:.4e} (rising for {rising} steps in a row)")
    } else {
        format!("{meta_loss:.4e}")
    }
}
