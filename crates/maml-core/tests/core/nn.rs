//! `maml_core::nn`'s pooling, flattening, dense and batch-norm layers against values
//! worked out by hand (the reference problems cover them inside networks, but not
//! `AvgPool2d`).

use burn::prelude::*;
use burn_ndarray::NdArray;
use maml_core::nn::{
    AvgPool2dConfig, BatchNormConfig, Flatten, GlobalAvgPool2d, LinearConfig, MaxPool2dConfig,
};

type B = NdArray<f32>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 data")
}

/// `[1, 1, 5, 5]` holding 0..25 row-major: 2x2 windows, the last row and column dropped.
#[test]
fn pooling_takes_non_overlapping_windows_and_drops_the_leftover() {
    let device = Default::default();
    let x = Tensor::<B, 1, Int>::arange(0..25, &device)
        .float()
        .reshape([1, 1, 5, 5]);
    let max = MaxPool2dConfig::new([2, 2]).init().forward(x.clone());
    assert_eq!(max.dims(), [1, 1, 2, 2]);
    // Windows {0,1,5,6}, {2,3,7,8}, {10,11,15,16}, {12,13,17,18}.
    assert_eq!(values(max), [6.0, 8.0, 16.0, 18.0]);
    let avg = AvgPool2dConfig::new([2, 2]).init().forward(x.clone());
    assert_eq!(values(avg), [3.0, 5.0, 13.0, 15.0]);
    // A 1x3 window: rows kept whole, columns {0,1,2} (3..4 dropped).
    let wide = MaxPool2dConfig::new([1, 3]).init().forward(x.clone());
    assert_eq!(values(wide), [2.0, 7.0, 12.0, 17.0, 22.0]);
    assert_eq!(values(GlobalAvgPool2d.forward(x.clone())), [12.0]);
    assert_eq!(Flatten.forward(x).dims(), [1, 25]);
}

/// `Linear` keeps burn-nn's `[d_input, d_output]` weight: `y = x W + b`.
#[test]
fn linear_is_x_w_plus_b() {
    let device = Default::default();
    let mut linear = LinearConfig::new(2, 3).init::<B>(&device);
    linear.weight = linear
        .weight
        .map(|_| Tensor::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &device));
    linear.bias = linear
        .bias
        .map(|b| b.map(|_| Tensor::from_floats([0.5, 0.0, -0.5], &device)));
    let y = linear.forward(Tensor::<B, 3>::from_floats([[[1.0, -1.0]]], &device));
    assert_eq!(values(y), [-2.5, -3.0, -3.5]);
}

/// Batch norm on the batch's statistics: each channel of the output has mean β and
/// (biased) standard deviation γ, up to ε.
#[test]
fn batch_norm_uses_the_batch_statistics() {
    let device = Default::default();
    let mut norm = BatchNormConfig::new(2).init::<B>(&device);
    norm.gamma = norm.gamma.map(|_| Tensor::from_floats([2.0, 1.0], &device));
    norm.beta = norm.beta.map(|_| Tensor::from_floats([1.0, -1.0], &device));
    let x = Tensor::<B, 2>::from_floats([[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]], &device);
    let y = norm.forward(x);
    let mean = values(y.clone().mean_dim(0));
    let centred = y.clone() - y.mean_dim(0);
    let std: Vec<f32> = values((centred.clone() * centred).mean_dim(0))
        .into_iter()
        .map(f32::sqrt)
        .collect();
    for (got, want) in mean.iter().zip([1.0, -1.0]) {
        assert!((got - want).abs() < 1e-5, "mean {got} vs {want}");
    }
    for (got, want) in std.iter().zip([2.0, 1.0]) {
        assert!((got - want).abs() < 1e-4, "std {got} vs {want}");
    }
}
