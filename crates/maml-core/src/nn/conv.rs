//! A 2-D convolution.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// Configuration of a [`Conv2d`] layer, as `burn::nn::conv::Conv2dConfig` without groups
/// or dilation.
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// Input and output channels, `[C, O]`.
    pub channels: [usize; 2],
    /// The kernel's size, `[k_h, k_w]`.
    pub kernel_size: [usize; 2],
    /// The kernel's step along each axis.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Zeros added on both sides of each axis (PyTorch's `padding=`).
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Whether a bias is added.
    #[config(default = true)]
    pub bias: bool,
    /// How the parameters are drawn (burn-nn's default: uniform in ±1/√(C·k_h·k_w)).
    #[config(
        default = "Initializer::KaimingUniform{gain: 0.577_350_269_189_625_8, fan_out_only: false}"
    )]
    pub initializer: Initializer,
}

/// A 2-D convolution, `[n, C, H, W] -> [n, O, H', W']` with
/// `H' = (H + 2 p_h - k_h) / s_h + 1` (and `W'` alike). Burn's `conv2d` op is twice
/// differentiable (its backward ops are convolutions again).
#[derive(Module, Debug)]
pub struct Conv2d<B: Backend> {
    /// `[O, C, k_h, k_w]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[O]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The kernel's step along each axis.
    pub stride: [usize; 2],
    /// Zeros added on both sides of each axis.
    pub padding: [usize; 2],
}

impl Conv2dConfig {
    /// A new [`Conv2d`] layer on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2d<B> {
        let [c, o] = self.channels;
        let [kh, kw] = self.kernel_size;
        let (fan_in, fan_out) = (Some(c * kh * kw), Some(o * kh * kw));
        let weight = self
            .initializer
            .init_with([o, c, kh, kw], fan_in, fan_out, device);
        let bias = self
            .bias
            .then(|| self.initializer.init_with([o], fan_in, fan_out, device));
        Conv2d {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl<B: Backend> Conv2d<B> {
    /// `input [n, C, H, W] -> [n, O, H', W']`.
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let options = ConvOptions::new(self.stride, self.padding, [1, 1], 1);
        conv2d(
            input,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            options,
        )
    }
}
