//! A user's module meta-trained through the library alone: `Trainer` with Burn's Adam and
//! an exponential learning-rate schedule, a checkpoint halfway, a resume into a learner
//! built from other initial weights, and evaluation on fresh tasks.

use burn::optim::AdamConfig;
use burn::optim::lr_scheduler::exponential::ExponentialLrSchedulerConfig;
use burn::prelude::*;
use burn::tensor::activation::tanh;
use burn_ndarray::NdArray;
use maml_core::data::families::SinusoidFamily;
use maml_core::nn::{Linear, LinearConfig};
use maml_core::{
    AdaptConfig, Loss, MetaModel, ModelLearner, SecondOrder, TaskFamily, Trainer, TrainerConfig,
};
use rand::SeedableRng;

type Cpu = NdArray<f32>;

/// A user's module: one hidden layer of tanh units.
#[derive(Module, Debug)]
pub(crate) struct SineNet<B: Backend> {
    pub(crate) hidden: Linear<B>,
    pub(crate) out: Linear<B>,
}

impl<B: Backend> MetaModel<B> for SineNet<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.out.forward(tanh(self.hidden.forward(x)))
    }
}

/// Serialises the tests' seeded initialisations: ndarray's RNG is global to the process,
/// and the tests of this binary run on several threads.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `init` run right after seeding ndarray's RNG with `seed`, with no other test's draw in
/// between.
fn seeded<T>(seed: u64, init: impl FnOnce(&burn_ndarray::NdArrayDevice) -> T) -> T {
    let _guard = SEEDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Default::default();
    Cpu::seed(&device, seed);
    init(&device)
}

fn net(seed: u64) -> SineNet<Cpu> {
    seeded(seed, |device| SineNet {
        hidden: LinearConfig::new(1, 16).init(device),
        out: LinearConfig::new(16, 1).init(device),
    })
}

type Net = SineNet<SecondOrder<Cpu>>;
type Meta = maml_core::MetaBackend<Cpu>;
type Opt = burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, SineNet<Meta>, Meta>;
type Schedule = burn::optim::lr_scheduler::exponential::ExponentialLrScheduler;

fn trainer(seed: u64) -> Trainer<Cpu, Net, Opt, Schedule> {
    // MAML++'s learned per-step step sizes ride along: a resume must restore them too.
    let adapt = AdaptConfig::new(0.01)
        .with_loss(Loss::Mse)
        .with_inner_steps(2)
        .with_per_step_lr(true);
    let schedule = ExponentialLrSchedulerConfig::new(0.01, 0.8).init().unwrap();
    let learner = ModelLearner::<Cpu, Net, _, _>::with_optimizer(
        net(seed),
        adapt,
        AdamConfig::new().init(),
        schedule,
    )
    .unwrap();
    let family = Box::new(SinusoidFamily::default());
    Trainer::new(
        learner,
        family,
        TrainerConfig::new(5).with_seed(3),
        &Default::default(),
    )
    .unwrap()
}

/// The weights, then the per-step step sizes.
fn weights(trainer: &Trainer<Cpu, Net, Opt, Schedule>) -> Vec<f32> {
    let m = trainer.learner().model();
    let table = trainer
        .learner()
        .step_table()
        .expect("per-step sizes are learned");
    [m.hidden.weight.val(), m.out.weight.val()]
        .into_iter()
        .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
        .chain(table.val().into_data().to_vec::<f32>().unwrap())
        .collect()
}

/// Six meta steps in one go, and three, a checkpoint, a resume into a learner built from
/// other initial weights, three more: the same weights and per-step step sizes (the
/// optimiser's moments, the schedule's step and the step index come back with them).
#[test]
fn a_user_module_trains_checkpoints_resumes_and_evaluates() {
    let dir = std::env::temp_dir().join(format!("maml-trainer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let mut straight = trainer(0);
    for _ in 0..6 {
        straight.step().unwrap();
    }

    let mut first = trainer(0);
    for _ in 0..3 {
        first.step().unwrap();
    }
    first.save(&dir).unwrap();
    first.save(&dir).unwrap(); // replaces the complete checkpoint
    let mut resumed = trainer(7).resume(&dir).unwrap();
    assert_eq!(resumed.step_index(), 3);
    for _ in 0..3 {
        resumed.step().unwrap();
    }
    let (a, b) = (weights(&straight), weights(&resumed));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        diff <= 1e-6,
        "resumed run differs from the uninterrupted one by {diff}"
    );
    assert_ne!(
        weights(&trainer(7)),
        a,
        "the other initial weights really differ"
    );

    // Evaluation: the loss before adaptation is the mean query MSE of the initial
    // weights, computed here directly.
    let tasks = SinusoidFamily::default().sample(30, &mut rand::rngs::StdRng::seed_from_u64(9));
    let report = resumed.evaluate(&tasks, 3).unwrap();
    assert_eq!(
        (report.tasks, report.curve.len(), report.accuracy),
        (30, 4, None)
    );
    let model = burn::module::AutodiffModule::valid(resumed.learner().model());
    let mut mse = 0.0;
    for task in &tasks {
        let x: Vec<f32> = task.query.x.iter().map(|r| r[0] as f32).collect();
        let n = x.len();
        let x = Tensor::<Cpu, 3>::from_data(TensorData::new(x, [1, n, 1]), &Default::default());
        let pred = model.forward(x);
        let pred = pred.into_data().to_vec::<f32>().unwrap();
        let y = task.query.y.as_ref().unwrap();
        mse += pred
            .iter()
            .zip(y)
            .map(|(p, y)| (f64::from(*p) - y[0]).powi(2))
            .sum::<f64>()
            / n as f64;
    }
    mse /= tasks.len() as f64;
    assert!(
        (report.curve[0] - mse).abs() <= 1e-4 * mse,
        "{} vs {mse}",
        report.curve[0]
    );

    // A missing checkpoint is an error naming it, not a panic.
    let missing = dir.join("nothing-here");
    let err = trainer(0)
        .resume(&missing)
        .err()
        .expect("no checkpoint there");
    assert!(err.to_string().contains("nothing-here"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Module, Debug)]
struct Head<B: Backend> {
    layer: Linear<B>,
}

impl<B: Backend> MetaModel<B> for Head<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.layer.forward(x)
    }
}

/// `evaluate`'s accuracy of classification, at no inner step: the share of each task's
/// query rows whose largest logit of the initial weights is at its one-hot label, read
/// here from the model's own predictions, and the 95 % interval `1.96 s / √n` over tasks.
#[test]
fn evaluation_reports_the_accuracy_and_its_interval() {
    use maml_core::data::families::BlobsFamily;
    let device = Default::default();
    let family = BlobsFamily::default();
    let head = seeded(5, |device| Head::<Cpu> {
        layer: LinearConfig::new(family.d_in(), family.ways).init(device),
    });
    let adapt = AdaptConfig::new(0.1).with_loss(Loss::CrossEntropy);
    let learner = ModelLearner::<Cpu, Head<SecondOrder<Cpu>>, _, _>::with_optimizer(
        head,
        adapt,
        AdamConfig::new().init(),
        1e-3,
    )
    .unwrap();
    let trainer = Trainer::new(
        learner,
        Box::new(family.clone()),
        TrainerConfig::new(4),
        &device,
    )
    .unwrap();
    let tasks = family.sample(40, &mut rand::rngs::StdRng::seed_from_u64(2));
    let report = trainer.evaluate(&tasks, 0).unwrap();

    let model = burn::module::AutodiffModule::valid(trainer.learner().model());
    let accuracies: Vec<f64> = tasks
        .iter()
        .map(|task| {
            let n = task.query.x.len();
            let x: Vec<f32> = task.query.x.concat().iter().map(|&v| v as f32).collect();
            let x = Tensor::<Cpu, 3>::from_data(TensorData::new(x, [1, n, family.d_in]), &device);
            let logits = model.forward(x).into_data().to_vec::<f32>().unwrap();
            let labels = task.query.y.as_ref().unwrap();
            let hits = logits
                .chunks(family.ways)
                .zip(labels)
                .filter(|(row, label)| {
                    let argmax =
                        |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
                    let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                    argmax(&row) == argmax(label)
                })
                .count();
            hits as f64 / n as f64
        })
        .collect();
    let n = accuracies.len() as f64;
    let mean = accuracies.iter().sum::<f64>() / n;
    let var = accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let (got, half) = report.accuracy.expect("classification reports an accuracy");
    assert!((got - mean).abs() < 1e-6, "accuracy {got} vs {mean}");
    assert!(
        (half - 1.96 * (var / n).sqrt()).abs() < 1e-6,
        "interval {half}"
    );
    assert!(half > 0.0, "tasks differ in accuracy");
}
