//! Batch norm on the batch's own statistics.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::prelude::*;

/// Configuration of a [`BatchNorm`] layer.
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// The number of channels (or features), `C`.
    pub num_features: usize,
    /// Added to the variance before its square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

/// Batch norm with the statistics of the batch it is given, the MAML convention: each
/// channel is normalised with the mean and biased variance over the images and positions
/// of this forward pass (in the inner loop the support set's, for the query loss the
/// query set's; PyTorch's `F.batch_norm(x, None, None, γ, β, training=True)`), then scaled
/// by γ and shifted by β. There are no running statistics: `burn::nn::BatchNorm`'s
/// running-statistics update detaches only the outer of MAML's two autodiff levels.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// γ, `[C]`, starting at 1.
    pub gamma: Param<Tensor<B, 1>>,
    /// β, `[C]`, starting at 0.
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl BatchNormConfig {
    /// A new [`BatchNorm`] layer on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        let c = self.num_features;
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([c], device)),
            beta: Param::from_tensor(Tensor::zeros([c], device)),
            epsilon: self.epsilon,
        }
    }
}

impl<B: Backend> BatchNorm<B> {
    /// `input [n, C, ...] -> [n, C, ...]` (`[n, C]` features or `[n, C, H, W]` images):
    /// statistics per channel over every other axis.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let dims = input.dims();
        let (n, c) = (dims[0], dims[1]);
        let rest = dims[2..].iter().product::<usize>();
        let x = input.reshape([n, c, rest]);
        let mean = x.clone().mean_dim(0).mean_dim(2);
        let centred = x - mean;
        let var = (centred.clone() * centred.clone()).mean_dim(0).mean_dim(2);
        let normed = centred / var.add_scalar(self.epsilon).sqrt();
        let gamma = self.gamma.val().reshape([1, c, 1]);
        let beta = self.beta.val().reshape([1, c, 1]);
        (normed * gamma + beta).reshape(dims)
    }
}
