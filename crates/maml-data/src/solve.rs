//! One meta-gradient of a [`Problem`] on any backend: the built-in `Mlp` when the layer
//! list is an MLP (versions 1 and 2 always are; its hand-derived road is then the
//! default), the layered model otherwise; and the same meta-gradient by central finite
//! differences, an oracle independent of both.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::family;
use crate::problem::{Answer, InnerLr, Problem, ProblemFormat};
use maml_core::algo::learn::Fast;
use maml_core::algo::learner::ModelLearner;
use maml_core::config::{GradientPath, MetaConfig, Order};
use maml_core::data::LinearWeights;
use maml_core::data::batch::MetaBatch;
use maml_core::data::layers::{Array, LayeredSpec, LayeredWeights};
use maml_core::error::Result;
use maml_core::model::layered::Layered;
use maml_core::model::mlp::{Mlp, MlpWeights};
use maml_core::model::{Learnable, MetaBackend, SecondOrder, check_device_precision, to_f64};

/// Solves a problem on backend `B` ([`GradientPath::Auto`]: for an MLP, hand-derived
/// back-propagation, and the linear model's affine inner steps for one layer; nested
/// autodiff for every other layer list).
pub fn solve<B: Backend>(problem: &Problem, device: &B::Device) -> Result<Answer> {
    solve_by::<B>(problem, GradientPath::Auto, device)
}

/// Solves a problem on backend `B`, taking the meta-gradient by `path` (a layer list
/// that is not an MLP has no hand-derived road: both paths are nested autodiff).
pub fn solve_by<B: Backend>(
    problem: &Problem,
    path: GradientPath,
    device: &B::Device,
) -> Result<Answer> {
    let d_out = problem.validate()?;
    check_device_precision::<B>(device)?;
    let config = MetaConfig::new(problem.adapt_config());
    let batch = MetaBatch::<B>::from_tasks(&problem.tasks, d_out, device);
    let sizes = match &problem.inner_lr {
        InnerLr::PerParameter(sizes) => Some(sizes),
        _ => None,
    };
    let steps = problem.inner_steps;
    let per_step = match &problem.inner_lr {
        InnerLr::PerStep(sizes) => Some(sizes),
        _ => None,
    };
    // The family's parts run on the layered model (its parameters in the layer list's
    // visit order, as `inner_layers` and the per-step table count them).
    let mlp = (problem.format != ProblemFormat::Family)
        .then(|| MlpWeights::from_spec(&problem.model))
        .flatten();
    let per_step_read = |values: Vec<f64>| {
        let like = per_step.expect("a step table comes from per-step sizes");
        family::table_to_layered(&values, steps, &problem.model, like)
    };
    if let Some((weights, activation)) = mlp {
        let mlp = |w: &MlpWeights| Mlp::<B>::from_weights(w, activation, device);
        let mut learner = ModelLearner::<B, Mlp<SecondOrder<B>>>::new(mlp(&weights), config)?;
        if let Some(sizes) = sizes {
            let sizes = MlpWeights::from_layered(sizes)
                .expect("validated step sizes have the MLP's layout");
            learner = learner.with_step_sizes(mlp(&sizes));
        }
        let read = |model: &Mlp<MetaBackend<B>>, grads: &GradientsParams| {
            weights_from_grads::<MetaBackend<B>, B>(model, grads).to_layered()
        };
        let fast = |fast: &Fast<Mlp<B>>| match fast {
            Fast::Batched(fast) => (0..problem.tasks.len())
                .map(|t| fast.to_weights(t).to_layered())
                .collect(),
            Fast::PerTask(fast) => fast.iter().map(|m| m.to_weights(0).to_layered()).collect(),
        };
        answer(
            learner.with_gradient_path(path),
            &batch,
            read,
            fast,
            per_step_read,
        )
    } else {
        let layered = |spec: &LayeredSpec| Layered::<B>::from_spec(spec, device);
        let mut learner =
            ModelLearner::<B, Layered<SecondOrder<B>>>::new(layered(&problem.model)?, config)?;
        if let Some(sizes) = sizes {
            learner = learner.with_step_sizes(layered(&problem.model.with_weights(sizes))?);
        }
        if let Some(sizes) = per_step {
            let (values, p) = family::table_values(sizes, &problem.model, steps);
            let data = TensorData::new(values, [steps, p]);
            learner = learner.with_step_table(Tensor::from_data(data, device));
        }
        let fast = |fast: &Fast<Layered<B>>| match fast {
            Fast::PerTask(fast) => fast.iter().map(Layered::to_weights).collect(),
            Fast::Batched(_) => unreachable!("the layered model runs task by task"),
        };
        let read = grads_as_weights::<MetaBackend<B>, B>;
        answer(
            learner.with_gradient_path(path),
            &batch,
            read,
            fast,
            per_step_read,
        )
    }
}

/// The meta-gradient of `learner` on `batch`, read into the answer layout by `read`
/// (initial weights' and step sizes' gradients) and `fast` (each task's fast weights).
fn answer<B: Backend, M: Learnable<B>>(
    learner: ModelLearner<B, M>,
    batch: &MetaBatch<B>,
    read: impl Fn(&M::Meta, &GradientsParams) -> LayeredWeights,
    fast: impl Fn(&Fast<M::Plain>) -> Vec<LayeredWeights>,
    per_step: impl Fn(Vec<f64>) -> LayeredWeights,
) -> Result<Answer> {
    let gradient = learner.meta_gradient(batch);
    let inner_lr_grad = match (
        learner.step_sizes(),
        learner.step_table(),
        &gradient.step_size_grads,
    ) {
        (Some(sizes), _, Some(grads)) => Some(read(sizes, grads)),
        (_, Some(table), Some(grads)) => {
            let values = match grads.get::<B, 2>(table.id) {
                Some(g) => g.into_data().iter::<f64>().collect(),
                None => vec![0.0; table.shape().num_elements()],
            };
            Some(per_step(values))
        }
        _ => None,
    };
    let meta_grad = read(learner.model(), &gradient.grads);
    let fast_weights = fast(
        gradient
            .fast
            .as_ref()
            .expect("ModelLearner::meta_gradient keeps the fast weights"),
    );
    Ok(Answer {
        meta_loss: to_f64(gradient.meta_loss)[0],
        meta_grad,
        inner_lr_grad,
        fast_weights,
    })
}

/// The MLP's layers read from gradients registered under its parameter ids.
pub(crate) fn weights_from_grads<A: Backend, G: Backend>(
    model: &Mlp<A>,
    grads: &GradientsParams,
) -> MlpWeights {
    let read = |id, shape: [usize; 3]| -> Vec<f64> {
        grads
            .get::<G, 3>(id)
            .map(|g| g.into_data().iter::<f64>().collect())
            .unwrap_or_else(|| vec![0.0; shape.iter().product()])
    };
    MlpWeights {
        layers: model
            .layers
            .iter()
            .map(|layer| {
                let [_, d_in, d_out] = layer.weight.dims();
                let w = read(layer.weight.id, [1, d_in, d_out]);
                let b = read(layer.bias.id, [1, 1, d_out]);
                LinearWeights {
                    weight: (0..d_out)
                        .map(|o| (0..d_in).map(|i| w[i * d_out + o]).collect())
                        .collect(),
                    bias: b,
                }
            })
            .collect(),
    }
}

/// Reads, in visit order, the gradient of every parameter of a module on `A` from
/// gradients on `G` (zeros for a parameter that did not feed the loss).
struct ReadGrads<'a, G: Backend> {
    grads: &'a GradientsParams,
    out: Vec<Array>,
    _backend: std::marker::PhantomData<G>,
}

impl<A: Backend, G: Backend> ModuleVisitor<A> for ReadGrads<'_, G> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let shape = param.val().dims().to_vec();
        let array = match self.grads.get::<G, D>(param.id) {
            Some(g) => Array::new(shape, g.into_data().iter::<f64>().collect()),
            None => Array::zeros(&shape),
        };
        self.out.push(array);
    }
}

/// The layered model's parameters' gradients, in its layer list's layout.
fn grads_as_weights<A: Backend, G: Backend>(
    model: &Layered<A>,
    grads: &GradientsParams,
) -> LayeredWeights {
    let mut visitor = ReadGrads::<G> {
        grads,
        out: Vec::new(),
        _backend: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    let mut weights = model.to_weights();
    for (slot, grad) in weights.arrays_mut().zip(visitor.out) {
        *slot = grad;
    }
    weights
}

/// The meta-gradient of a problem (and Meta-SGD's step-size gradient) by central finite
/// differences of the meta-loss, `(L(θ + εe_i) - L(θ - εe_i)) / 2ε` for every entry: an
/// oracle independent of the meta-gradient code, for f64 backends. Costs two meta-losses
/// per entry.
pub fn finite_differences<B: Backend>(
    problem: &Problem,
    eps: f64,
    device: &B::Device,
) -> Result<(LayeredWeights, Option<LayeredWeights>)> {
    let loss_at = |p: &Problem| -> Result<f64> {
        let mut p = p.clone();
        // The meta-loss does not depend on the order; first order is cheaper.
        p.order = Order::First;
        Ok(solve::<B>(&p, device)?.meta_loss)
    };
    // d L / d w for every entry of `at`, with `with(w)` the problem whose weights of that
    // layout are `w`.
    let central = |at: &LayeredWeights, with: &dyn Fn(LayeredWeights) -> Problem| {
        let mut grad = at.clone();
        let lens: Vec<usize> = at.arrays().map(|a| a.values.len()).collect();
        for (a, &len) in lens.iter().enumerate() {
            for i in 0..len {
                let shifted = |e: f64| {
                    let mut w = at.clone();
                    w.arrays_mut().nth(a).expect("array index in range").values[i] += e;
                    with(w)
                };
                let d = (loss_at(&shifted(eps))? - loss_at(&shifted(-eps))?) / (2.0 * eps);
                grad.arrays_mut()
                    .nth(a)
                    .expect("array index in range")
                    .values[i] = d;
            }
        }
        Ok::<_, maml_core::error::MamlError>(grad)
    };
    let grad = central(&problem.model.weights(), &|w| Problem {
        model: problem.model.with_weights(&w),
        ..problem.clone()
    })?;
    let lr_grad = match &problem.inner_lr {
        InnerLr::Scalar(_) => None,
        InnerLr::PerParameter(sizes) => Some(central(sizes, &|s| Problem {
            inner_lr: InnerLr::PerParameter(s),
            ..problem.clone()
        })?),
        InnerLr::PerStep(sizes) => Some(central(sizes, &|s| Problem {
            inner_lr: InnerLr::PerStep(s),
            ..problem.clone()
        })?),
    };
    Ok((grad, lr_grad))
}
