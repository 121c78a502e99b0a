//! The family's stated behaviours that no reference problem covers: MAML++'s annealed
//! multi-step loss weights against their closed form, the schedule's derivative-order
//! annealing, and per-step parts evaluated with more inner steps than they were trained
//! with (the last set and the last step size repeat) or fewer (the step's own set).

use burn::prelude::*;
use burn_ndarray::NdArray;
use maml_core::algo::learn::{Fast, query_accuracies};
use maml_core::data::layers::{Array, LayerSpec, LayeredSpec};
use maml_core::model::layered::Layered;
use maml_core::train::schedule::multi_step_weights;
use maml_core::{AdaptConfig, MetaBatch, MetaModel, Order, Schedule, SetData, TaskData};

type B = NdArray<f32>;

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

/// K = 4: `[0.25; 4]` at step 0; halfway `(0.25 + 0.0075) / 2` for the first three and the
/// rest for the last; from the end on `0.0075` and `1 − 3 · 0.0075`.
#[test]
fn multi_step_weights_anneal_to_the_last_step() {
    assert!(close(&multi_step_weights(4, 0, 100), &[0.25; 4]));
    let half = (0.25 + 0.0075) / 2.0;
    let expected = [half, half, half, 1.0 - 3.0 * half];
    assert!(close(&multi_step_weights(4, 50, 100), &expected));
    let end = [0.0075, 0.0075, 0.0075, 1.0 - 3.0 * 0.0075];
    assert!(close(&multi_step_weights(4, 100, 100), &end));
    assert!(close(&multi_step_weights(4, 5000, 100), &end));
}

/// First order before `first_order_until`, the configured order from it on; the
/// multi-step loss weights set before `multi_step_loss_until`, the last step's loss alone
/// from it on; nothing else changes.
#[test]
fn the_schedule_anneals_the_order_and_the_step_weights() {
    let base = AdaptConfig::new(0.1).with_inner_steps(2);
    let schedule = Schedule::new()
        .with_first_order_until(Some(10))
        .with_multi_step_loss_until(Some(20));
    let early = schedule.adapt_at(&base, 9);
    assert_eq!(early.order, Order::First);
    assert_eq!(schedule.adapt_at(&base, 10).order, Order::Second);
    let weights = early.step_loss_weights.expect("the multi-step loss is on");
    assert!(close(&weights, &multi_step_weights(2, 9, 20)));
    assert_eq!(early.inner_lr, base.inner_lr);
    assert_eq!(schedule.adapt_at(&base, 20).step_loss_weights, None);
    assert_eq!(
        Schedule::new().adapt_at(&base, 3),
        base,
        "an empty schedule changes nothing"
    );
}

/// A per-step batch norm of two sets on vectors: the network after step `k` uses set
/// `min(k, 1)`, so step 5 computes what step 1 does and step 0 something else;
/// `forward` (the adapted weights' predictions) uses the last set.
#[test]
fn per_step_batch_norm_keeps_its_last_set_beyond_the_trained_steps() {
    let device = Default::default();
    let spec = LayeredSpec {
        input: vec![2],
        layers: vec![
            LayerSpec::BatchNorm {
                weight: Array::new(vec![2, 2], vec![1.0, 1.0, 2.0, 3.0]),
                bias: Array::new(vec![2, 2], vec![0.0, 0.0, 0.5, -0.5]),
                per_step: true,
            },
            LayerSpec::Linear {
                weight: Array::new(vec![1, 2], vec![1.0, 1.0]),
                bias: Array::new(vec![1], vec![0.0]),
            },
        ],
    };
    let model = Layered::<B>::from_spec(&spec, &device).unwrap();
    let x = Tensor::<B, 3>::from_data(
        TensorData::new(vec![1.0, 2.0, 3.0, -1.0, 0.0, 5.0], [1, 3, 2]),
        &device,
    );
    let at = |k| {
        model
            .forward_at(x.clone(), k)
            .into_data()
            .iter::<f64>()
            .collect::<Vec<_>>()
    };
    // x's columns [1, 3, 0] and [2, -1, 5] normalised (biased variance, ε = 1e-5); set 1
    // scales them by 2 and 3 and shifts them by 0.5 and -0.5.
    let n1 = [-0.267_260_4, 1.336_301_9, -1.069_041_5];
    let n2 = [0.0, -1.224_743_9, 1.224_743_9];
    let set1: Vec<f64> = (0..3)
        .map(|i| 2.0 * n1[i] + 0.5 + 3.0 * n2[i] - 0.5)
        .collect();
    let set0: Vec<f64> = (0..3).map(|i| n1[i] + n2[i]).collect();
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(near(&at(0), &set0), "{:?} vs {set0:?}", at(0));
    assert!(near(&at(1), &set1), "{:?} vs {set1:?}", at(1));
    assert_eq!(at(5), at(1));
    let forward: Vec<f64> = model.forward(x.clone()).into_data().iter::<f64>().collect();
    assert_eq!(forward, at(1));
    assert_eq!(model.fixed_params(), vec![0, 1]);
}

/// The query accuracy of fast weights after `k` steps reads a per-step batch norm's set
/// `k`: with the sets `γ = [1, 1]`, `[−1, −1]`, `[1, 1]` and no shift, the logits of the
/// query `[[1, 0], [0, 1]]` are its normalised columns, `[[1, −1], [−1, 1]]`, times `γ`:
/// both rows right (accuracy 1) at sets 0 and 2, both wrong (0) at set 1; step 7 keeps
/// the last set.
#[test]
fn query_accuracy_reads_the_batch_norm_set_of_its_step() {
    let device = Default::default();
    let spec = LayeredSpec {
        input: vec![2],
        layers: vec![LayerSpec::BatchNorm {
            weight: Array::new(vec![3, 2], vec![1.0, 1.0, -1.0, -1.0, 1.0, 1.0]),
            bias: Array::new(vec![3, 2], vec![0.0; 6]),
            per_step: true,
        }],
    };
    let model = Layered::<B>::from_spec(&spec, &device).unwrap();
    let eye = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    let set = SetData {
        x: eye.clone(),
        y: Some(eye),
    };
    let task = TaskData {
        support: set.clone(),
        query: set,
    };
    let batch = MetaBatch::<B>::from_tasks(&[task], 2, &device);
    let fast = Fast::Batched(model);
    let accuracy = |k| {
        query_accuracies::<B, Layered<B>>(&fast, &batch.query, k)
            .into_data()
            .iter::<f64>()
            .collect::<Vec<_>>()
    };
    assert_eq!(accuracy(0), vec![1.0]);
    assert_eq!(accuracy(1), vec![0.0]);
    assert_eq!(accuracy(2), vec![1.0]);
    assert_eq!(accuracy(7), vec![1.0]);
}
