//! Random small conv nets (conv2d with stride and padding, batch norm, ReLU / tanh, 2x2
//! max pooling, spatial mean or flatten, linear; both orders, 0-2 inner steps, Meta-SGD,
//! ragged tasks, squared and cross-entropy losses): the meta-gradient of the layered model
//! against central finite differences of the meta-loss, in f64.

use burn::prelude::Backend;
use maml_burn::maml_core::data::layers::Array;
use maml_burn::maml_core::data::layers::LayerSpec;
use maml_burn::maml_core::data::layers::LayeredSpec;
use maml_burn::maml_core::{Loss, Order, SetData, TaskData};
use maml_burn::maml_data::problem::InnerLr;
use maml_burn::maml_data::problem::Problem;
use maml_burn::maml_data::problem::ProblemFormat;
use maml_burn::maml_data::solve::finite_differences;
use maml_burn::maml_data::solve::solve;
use rand::Rng;
use rand::rngs::StdRng;

use crate::common::{is_f64, rng};

fn random_array(rng: &mut StdRng, shape: &[usize], scale: f64) -> Array {
    let len = shape.iter().product();
    Array::new(
        shape.to_vec(),
        (0..len).map(|_| rng.random_range(-scale..scale)).collect(),
    )
}

pub(crate) fn random_problem(seed: u64) -> Problem {
    let mut rng = rng(seed);
    let (c, h, w) = (
        rng.random_range(1..=2),
        rng.random_range(4..=6),
        rng.random_range(4..=6),
    );
    let mut layers = Vec::new();
    let (mut ch, mut hh, mut ww) = (c, h, w);
    for block in 0..rng.random_range(1..=2) {
        let padding = rng.random_range(0..=1);
        let k = rng.random_range(1..=3.min(hh.min(ww) + 2 * padding));
        let stride = rng.random_range(1..=2);
        let out = rng.random_range(1..=3);
        let scale = 1.0 / ((ch * k * k) as f64).sqrt();
        layers.push(LayerSpec::Conv2d {
            weight: random_array(&mut rng, &[out, ch, k, k], 1.5 * scale),
            bias: random_array(&mut rng, &[out], 0.3),
            stride,
            padding,
        });
        hh = (hh + 2 * padding - k) / stride + 1;
        ww = (ww + 2 * padding - k) / stride + 1;
        ch = out;
        if rng.random_bool(0.6) {
            let gamma = Array::new(
                vec![ch],
                (0..ch).map(|_| rng.random_range(0.5..1.5)).collect(),
            );
            layers.push(LayerSpec::BatchNorm {
                weight: gamma,
                bias: random_array(&mut rng, &[ch], 0.3),
                per_step: false,
            });
        }
        layers.push(if rng.random_bool(0.5) {
            LayerSpec::Relu
        } else {
            LayerSpec::Tanh
        });
        if block == 0 && hh >= 2 && ww >= 2 && rng.random_bool(0.5) {
            layers.push(LayerSpec::MaxPool2d { kernel: 2 });
            hh /= 2;
            ww /= 2;
        }
    }
    let features = if rng.random_bool(0.5) {
        layers.push(LayerSpec::MeanSpatial);
        ch
    } else {
        layers.push(LayerSpec::Flatten);
        ch * hh * ww
    };
    let loss = [Loss::Mse, Loss::Sse, Loss::CrossEntropy][rng.random_range(0..3)];
    let d_out = if loss == Loss::CrossEntropy {
        rng.random_range(2..=3)
    } else {
        1
    };
    layers.push(LayerSpec::Linear {
        weight: random_array(&mut rng, &[d_out, features], 1.0 / (features as f64).sqrt()),
        bias: random_array(&mut rng, &[d_out], 0.3),
    });
    let model = LayeredSpec {
        input: vec![c, h, w],
        layers,
    };
    let set = |rng: &mut StdRng| {
        let n = rng.random_range(2..=3);
        let y = match loss {
            Loss::CrossEntropy => (0..n)
                .map(|_| {
                    let mut row = vec![0.0; d_out];
                    row[rng.random_range(0..d_out)] = 1.0;
                    row
                })
                .collect(),
            _ => (0..n).map(|_| vec![rng.random_range(-1.0..1.0)]).collect(),
        };
        let x = random_array(rng, &[n, c, h, w], 1.0);
        SetData {
            x: x.values.chunks(c * h * w).map(<[f64]>::to_vec).collect(),
            y: Some(y),
        }
    };
    let tasks = (0..rng.random_range(1..=2))
        .map(|_| TaskData {
            support: set(&mut rng),
            query: set(&mut rng),
        })
        .collect();
    let inner_lr = if rng.random_bool(0.3) {
        let mut sizes = model.weights();
        for a in sizes.arrays_mut() {
            a.values
                .iter_mut()
                .for_each(|v| *v = rng.random_range(0.02..0.2));
        }
        InnerLr::PerParameter(sizes)
    } else {
        InnerLr::Scalar(rng.random_range(0.02..0.2))
    };
    Problem {
        model,
        tasks,
        inner_lr,
        inner_steps: rng.random_range(0..=2),
        order: if rng.random_bool(0.7) {
            Order::Second
        } else {
            Order::First
        },
        loss,
        imaml: None,
        inner_checkpoint_every: None,
        family: Default::default(),
        format: ProblemFormat::Layered,
    }
}

/// Second order is the derivative of the meta-loss, so it must match finite differences
/// (first order is not: it is checked against the reference answers).
fn random_conv_nets_match_finite_differences<B: Backend>(device: &B::Device) {
    if !is_f64::<B>() {
        return; // f32 rounding swamps central differences
    }
    let mut checked = 0;
    for seed in 0..12 {
        let mut problem = random_problem(seed);
        problem.order = Order::Second;
        let answer = solve::<B>(&problem, device).unwrap();
        let (grad, lr_grad) = finite_differences::<B>(&problem, 1e-6, device).unwrap();
        let scale = grad.max_abs().max(1e-6);
        let diff = answer.meta_grad.max_abs_diff(&grad);
        assert!(
            diff <= 1e-6 * scale.max(1.0),
            "seed {seed}: meta_grad differs from finite differences by {diff:e} (scale {scale:e}): {problem:?}"
        );
        if let Some(lr_grad) = lr_grad {
            let a = answer
                .inner_lr_grad
                .expect("Meta-SGD gives a step-size gradient");
            let diff = a.max_abs_diff(&lr_grad);
            assert!(
                diff <= 1e-6 * lr_grad.max_abs().max(1.0),
                "seed {seed}: inner_lr_grad differs from finite differences by {diff:e}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 12);
}

crate::backend_tests!(random_conv_nets_match_finite_differences);
