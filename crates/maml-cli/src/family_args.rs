//! The flags of MAML's family on `maml train` (docs/family.md): the algorithm
//! (`--algorithm reptile|anil|boil`), the inner optimizer, MAML++'s parts and schedules,
//! and `--recipe maml++`, turned into the run's configuration.

use clap::{Args, ValueEnum};
use maml_burn::maml_core::config::Imaml;
use maml_burn::maml_core::model::presets::ModelConfig;
use maml_burn::maml_core::{AdaptConfig, InnerOptimizer, Schedule};

use crate::error::CliError;

/// The meta-learning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// MAML: the query loss differentiated through the inner steps (--order).
    Maml,
    /// Implicit MAML: a proximal inner loop (--lambda) and the implicit meta-gradient by
    /// conjugate gradient (--cg-steps); --order does not apply.
    Imaml,
    /// Reptile: θ_0 − θ_K as the meta-gradient (first order, no query gradient).
    Reptile,
    /// ANIL: MAML with the head (the last linear layer) alone adapted.
    Anil,
    /// BOIL: MAML with the body (every layer but the head) alone adapted.
    Boil,
}

impl std::fmt::Display for AlgorithmArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl AlgorithmArg {
    /// The parameters the inner loop adapts, by visit index, for a built-in model of
    /// `params` parameter tensors whose last two are the head's (`None`: all).
    pub fn inner_params(self, params: usize) -> Option<Vec<usize>> {
        let head = params.saturating_sub(2);
        match self {
            Self::Anil => Some((head..params).collect()),
            Self::Boil => Some((0..head).collect()),
            _ => None,
        }
    }

    /// Sets the algorithm's fields of `adapt` (iMAML's settings `imaml`).
    pub fn configure(self, adapt: AdaptConfig, imaml: Imaml) -> AdaptConfig {
        match self {
            Self::Imaml => adapt.with_imaml(Some(imaml)),
            Self::Reptile => adapt.with_reptile(true),
            _ => adapt,
        }
    }
}

/// A published configuration set in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Recipe {
    /// MAML++ (Antoniou et al. 2019) on Omniglot: 5 inner steps of 0.1, learned
    /// per-step step sizes, per-step batch norm, the multi-step loss annealed over the
    /// first tenth of the meta steps, first order for the first third, cosine annealing
    /// of the meta learning rate to a hundredth of it.
    #[value(name = "maml++")]
    MamlPlusPlus,
}

/// MAML's family on `maml train` (docs/family.md).
#[derive(Debug, Clone, Args)]
pub struct FamilyArgs {
    /// The inner loop's update direction, differentiated through in second order: sgd,
    /// momentum (0.9) or adam (0.9, 0.999, eps 1e-8, eps_root 1e-8).
    #[arg(long, default_value = "sgd", value_parser = InnerOptimizer::named)]
    pub inner_optimizer: InnerOptimizer,
    /// MAML++'s learned per-step, per-layer step sizes (LSLR), starting at --inner-lr.
    #[arg(long)]
    pub lslr: bool,
    /// MAML++'s multi-step loss: every inner step's query loss, weighted equally at
    /// first and annealed to the last step's alone over the first N meta steps.
    #[arg(long, value_name = "N")]
    pub multi_step_loss: Option<usize>,
    /// MAML++'s per-step batch norm (conv4, conv4-pool): one set of γ and β per inner
    /// step and one after the last, meta-learned, never adapted.
    #[arg(long)]
    pub per_step_bn: bool,
    /// Derivative-order annealing: first order for the first N meta steps, then --order.
    #[arg(long, value_name = "N")]
    pub first_order_until: Option<usize>,
    /// Cosine annealing of the meta learning rate over the run (Burn's scheduler), down
    /// to --cosine-min-lr.
    #[arg(long)]
    pub cosine_meta_lr: bool,
    /// The last meta learning rate of --cosine-meta-lr [default: a hundredth of
    /// --meta-lr].
    #[arg(long)]
    pub cosine_min_lr: Option<f64>,
    /// A published configuration in one word: maml++ (flags given beside it win).
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,
}

/// The number of parameter tensors of a built-in model (the last two its head's): the
/// linear model's 2, an MLP's 2 per layer, a conv net's 2 per conv and batch norm and 2
/// for the head.
pub fn param_tensors(model: Option<&ModelConfig>) -> usize {
    match model {
        None => 2,
        Some(ModelConfig::Mlp(mlp)) => 2 * (mlp.hidden.len() + 1),
        Some(ModelConfig::Conv(_)) => 4 * 4 + 2,
    }
}

/// What the family's flags set in a run's configuration.
pub struct FamilyConfig {
    /// The inner loop.
    pub adapt: AdaptConfig,
    /// The model (per-step batch norm set).
    pub model: Option<ModelConfig>,
    /// The schedules by meta step.
    pub schedule: Option<Schedule>,
}

impl FamilyArgs {
    /// Whether `--recipe maml++` was given.
    pub fn maml_plus_plus(&self) -> bool {
        self.recipe == Some(Recipe::MamlPlusPlus)
    }

    /// The inner loop's defaults the recipe sets: `(inner_steps, inner_lr)`.
    pub fn recipe_defaults(&self) -> Option<(usize, f64)> {
        self.maml_plus_plus().then_some((5, 0.1))
    }

    /// Applies the flags to the inner loop `adapt` (whose algorithm fields are set), the
    /// model and a run of `meta_steps` meta steps at `meta_lr`.
    pub fn apply(
        &self,
        adapt: AdaptConfig,
        model: Option<ModelConfig>,
        meta_steps: usize,
        meta_lr: f64,
    ) -> Result<FamilyConfig, CliError> {
        let recipe = self.maml_plus_plus();
        let adapt = adapt
            .with_inner_optimizer(self.inner_optimizer)
            .with_per_step_lr(self.lslr || recipe);
        let per_step_bn = self.per_step_bn || recipe;
        let model = match model {
            Some(ModelConfig::Conv(conv)) if per_step_bn => Some(ModelConfig::Conv(
                conv.with_per_step_bn(Some(adapt.inner_steps + 1)),
            )),
            other if self.per_step_bn => {
                let what = if other.is_some() {
                    "an MLP"
                } else {
                    "the linear model"
                };
                return Err(CliError::Usage(format!(
                    "--per-step-bn needs a conv net with batch norm (--model conv4 or \
                     conv4-pool), not {what}"
                )));
            }
            other => other,
        };
        let schedule = Schedule::new()
            .with_multi_step_loss_until(self.multi_step_loss.or(recipe.then_some(meta_steps / 10)))
            .with_first_order_until(self.first_order_until.or(recipe.then_some(meta_steps / 3)))
            .with_cosine_min_lr(
                (self.cosine_meta_lr || recipe)
                    .then(|| self.cosine_min_lr.unwrap_or(meta_lr / 100.0)),
            );
        schedule
            .adapt_at(&adapt, 0)
            .validate()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let any = schedule.multi_step_loss_until.is_some()
            || schedule.first_order_until.is_some()
            || schedule.cosine_min_lr.is_some();
        if self.multi_step_loss.is_some() && adapt.inner_steps < 2 {
            return Err(CliError::Usage(format!(
                "--multi-step-loss needs at least two inner steps (--inner-steps {})",
                adapt.inner_steps
            )));
        }
        Ok(FamilyConfig {
            adapt,
            model,
            schedule: any.then_some(schedule),
        })
    }
}
