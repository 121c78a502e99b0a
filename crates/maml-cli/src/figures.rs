//! The MAML paper's figures from a checkpoint: Figure 2 (one sinusoid task, the
//! predictions before and after adaptation) and Figure 3 (the query loss against
//! gradient steps, MAML and the pretrained baseline).

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::data::families::SinusoidFamily;
use maml_burn::maml_core::train::guard::step_rng;
use maml_burn::maml_core::{AdaptConfig, TaskData};
use maml_burn::maml_data::model_trainer::adapted_predictions;
use maml_burn::maml_data::run::TaskSource;
use maml_burn::maml_data::stored::BuiltIn;
use maml_burn::maml_data::stored::ModelCheckpoint;
use maml_burn::maml_data::stored::ModelJob;
use maml_burn::maml_data::stored::StoredModel;

use crate::error::CliError;
use crate::plot::{Series, Style, line_plot};
use crate::weights::read_model;

/// The seed of Figure 2's task (apart from every training step's and evaluation's).
const FIGURE_STREAM: usize = usize::MAX - 2;

/// The MAML paper's Figure 3 (`adaptation.svg` in `dir`): the mean query loss on `tasks`
/// tasks against gradient steps, of MAML and of the pretrained baseline.
pub fn figure3(
    dir: &Path,
    tasks: usize,
    maml: &[f64],
    pretrained: Option<&[f64]>,
) -> Result<(), CliError> {
    let curve = |name: &str, c: &[f64]| Series {
        style: Style::Line,
        name: name.into(),
        points: c.iter().enumerate().map(|(k, l)| (k as f64, *l)).collect(),
    };
    let mut series = vec![curve("MAML", maml)];
    if let Some(p) = pretrained {
        series.push(curve("pretrained", p));
    }
    line_plot(
        &dir.join("adaptation.svg"),
        &format!("Query loss on {tasks} fresh tasks vs gradient steps"),
        "number of gradient steps",
        "mean query loss",
        &series,
        true,
    )
}

/// The MAML paper's Figure 2 for one fresh sinusoid task: the ground truth, the K
/// support points, and the predictions of MAML and of the pretrained model before and
/// after 1 and 10 gradient steps.
pub struct Figure2Job {
    pub checkpoint: PathBuf,
    pub seed: u64,
}

/// Figure 2's predictions for the checkpoint's model type.
struct Predict<'a, B: Backend> {
    model: &'a StoredModel,
    sizes: Option<&'a StoredModel>,
    task: &'a TaskData,
    x: &'a [Vec<f64>],
    steps: &'a [usize],
    adapt: &'a AdaptConfig,
    device: &'a B::Device,
}

impl<B: Backend> ModelJob<B> for Predict<'_, B> {
    type Output = Result<Vec<Vec<Vec<f64>>>, CliError>;
    fn run<M: BuiltIn<B>>(self) -> Self::Output {
        Ok(adapted_predictions::<B, M>(
            self.model,
            self.sizes,
            self.task,
            self.x,
            self.steps,
            self.adapt,
            self.device,
        )?)
    }
}

impl BackendJob for Figure2Job {
    type Output = ();
    type Error = CliError;

    fn run<B: Backend>(self, device: &B::Device) -> Result<(), CliError> {
        let checkpoint = ModelCheckpoint::load(&self.checkpoint)?;
        let TaskSource::Sinusoid(family) = &checkpoint.config.tasks else {
            return Err(CliError::Usage(
                "--figures needs a checkpoint of the sinusoid family".into(),
            ));
        };
        let family: &SinusoidFamily = family;
        let (sine, task) = family.sample_task(&mut step_rng(self.seed, FIGURE_STREAM));
        let grid: Vec<f64> = (0..=200)
            .map(|i| family.x_min + (family.x_max - family.x_min) * i as f64 / 200.0)
            .collect();
        let x: Vec<Vec<f64>> = grid.iter().map(|&v| vec![v]).collect();
        let adapt: AdaptConfig = checkpoint.config.meta.adapt.clone();
        let steps = [0, 1, 10];
        let mut series = vec![Series {
            style: Style::Line,
            name: "ground truth".into(),
            points: grid.iter().map(|&v| (v, sine.at(v))).collect(),
        }];
        let kind = checkpoint.model.kind();
        let mut inits = vec![(
            "MAML",
            checkpoint.model.clone(),
            checkpoint.step_sizes.clone(),
        )];
        let pretrained = self.checkpoint.with_file_name("pretrained.json");
        if pretrained.exists() {
            inits.push(("pretrained", read_model(&pretrained, kind)?, None));
        }
        for (name, model, sizes) in inits {
            let preds = kind.dispatch::<B, _>(Predict {
                model: &model,
                sizes: sizes.as_ref(),
                task: &task,
                x: &x,
                steps: &steps,
                adapt: &adapt,
                device,
            })?;
            for (k, pred) in steps.iter().zip(preds) {
                series.push(Series {
                    style: Style::Line,
                    name: format!("{name}, {k} steps"),
                    points: grid.iter().zip(pred).map(|(&v, p)| (v, p[0])).collect(),
                });
            }
        }
        series.push(Series {
            style: Style::Markers,
            name: format!("{} support points", task.support.len()),
            points: task
                .support
                .x
                .iter()
                .zip(task.support.y.iter().flatten())
                .map(|(x, y)| (x[0], y[0]))
                .collect(),
        });
        let out = self.checkpoint.with_file_name("figure2.svg");
        line_plot(
            &out,
            &format!(
                "One sinusoid task (A = {:.2}, phase = {:.2}): adaptation from MAML and pretrained",
                sine.amplitude, sine.phase
            ),
            "x",
            "y",
            &series,
            false,
        )
    }
}
