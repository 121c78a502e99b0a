//! The pieces of a meta step shared by every trainer: the guard that catches
//! divergence, the RNG of a step, and what a step measured.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::error::MamlError;

/// Watches the meta-loss of a run: non-finite values, a rise above the threshold times
/// the lowest value so far, and how many steps in a row it has risen.
#[derive(Debug, Clone)]
pub struct DivergenceGuard {
    threshold: Option<f64>,
    lowest: f64,
    last: f64,
    rising: usize,
}

impl DivergenceGuard {
    /// A guard with `threshold` (`None`: off).
    pub fn new(threshold: Option<f64>) -> Self {
        Self {
            threshold,
            lowest: f64::INFINITY,
            last: f64::INFINITY,
            rising: 0,
        }
    }

    /// Checks the meta-loss of step `step`; `before` is the step's query loss before
    /// adaptation (NaN if unknown). The reference is the lowest of every meta-loss and
    /// every query loss before adaptation seen so far, this step's included: a run whose
    /// inner loop blows up from the first step is caught too.
    pub fn check(&mut self, step: usize, meta_loss: f64, before: f64) -> crate::error::Result<()> {
        if before.is_finite() {
            self.lowest = self.lowest.min(before);
        }
        if !meta_loss.is_finite() {
            return Err(MamlError::Diverged {
                step,
                what: "meta-loss",
                value: meta_loss,
            });
        }
        if let Some(threshold) = self.threshold
            && self.lowest.is_finite()
            && meta_loss > threshold * self.lowest.max(f64::MIN_POSITIVE)
        {
            return Err(MamlError::DivergedAbove {
                step,
                value: meta_loss,
                lowest: self.lowest,
                threshold,
            });
        }
        self.rising = if meta_loss > self.last {
            self.rising + 1
        } else {
            0
        };
        self.last = meta_loss;
        self.lowest = self.lowest.min(meta_loss);
        Ok(())
    }

    /// For how many steps in a row the meta-loss has risen.
    pub fn rising_steps(&self) -> usize {
        self.rising
    }
}

/// The RNG of meta step `step` of a run with `seed`: each step's tasks depend on
/// `(seed, step)` alone, so a resumed run draws the same tasks as an uninterrupted one.
pub fn step_rng(seed: u64, step: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// What one meta step measured, before the update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepMetrics {
    /// The meta step (0-based).
    pub step: usize,
    /// Mean query loss after adaptation (the meta-loss).
    pub meta_loss: f64,
    /// Mean query loss of the initial weights, before adaptation.
    pub query_loss_before: f64,
    /// Mean query loss after adaptation (equal to `meta_loss`).
    pub query_loss_after: f64,
    /// Mean query accuracy after adaptation, for classification.
    pub query_accuracy: Option<f64>,
}
