//! A dense layer as `matmul` + `add`.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::prelude::*;

/// Configuration of a [`Linear`] layer, as `burn::nn::LinearConfig`.
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// Whether a bias is added.
    #[config(default = true)]
    pub bias: bool,
    /// How the parameters are drawn (burn-nn's default: uniform in ±1/√d_input).
    #[config(
        default = "Initializer::KaimingUniform{gain: 0.577_350_269_189_625_8, fan_out_only: false}"
    )]
    pub initializer: Initializer,
}

/// `y = x W + b`, twice differentiable: `matmul` + `add` (Burn 0.21's fused `linear`, which
/// `burn::nn::Linear` calls, has no second derivative).
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_input, d_output]`, as in `burn::nn::Linear`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl LinearConfig {
    /// A new [`Linear`] layer on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        let fans = (Some(self.d_input), Some(self.d_output));
        let weight =
            self.initializer
                .init_with([self.d_input, self.d_output], fans.0, fans.1, device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.d_output], fans.0, fans.1, device)
        });
        Linear { weight, bias }
    }
}

impl<B: Backend> Linear<B> {
    /// `input [..., d_input] -> [..., d_output]` (any rank of at least 2).
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let out = input.matmul(self.weight.val().unsqueeze());
        match &self.bias {
            Some(bias) => out + bias.val().unsqueeze(),
            None => out,
        }
    }
}
