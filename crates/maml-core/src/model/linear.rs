//! The linear model `y = x W^T + b` (PyTorch's `F.linear`), as a Burn module and as a
//! functional forward that takes the parameters explicitly, so the same code runs on the
//! initial weights and on fast weights.

use burn::module::{Module, Param};
use burn::prelude::*;

use crate::data::LinearWeights;

/// A linear model's parameters as a Burn [`Module`]: `weight` is `[out, in]`, `bias` is
/// `[out]`. On an autodiff backend these are the meta-learned initial weights.
#[derive(Module, Debug)]
pub struct LinearModel<B: Backend> {
    /// `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> LinearModel<B> {
    /// A model holding the given host weights, on `device`.
    pub fn from_weights(weights: &LinearWeights, device: &B::Device) -> Self {
        let (weight, bias) = weights_to_tensors(weights, device);
        Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        }
    }

    /// Copies the parameters back to host memory.
    pub fn to_weights(&self) -> LinearWeights {
        tensors_to_weights(self.weight.val(), self.bias.val())
    }

    /// `[n, in] -> [n, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        linear(x, self.weight.val(), self.bias.val())
    }

    /// `in`.
    pub fn d_in(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `out`.
    pub fn d_out(&self) -> usize {
        self.weight.shape()[0]
    }
}

/// `F.linear`: `x [n, in]`, `weight [out, in]`, `bias [out]` -> `[n, out]`.
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, 2> {
    x.matmul(weight.transpose()) + bias.unsqueeze_dim(0)
}

/// Host weights to tensors `([out, in], [out])`.
pub fn weights_to_tensors<B: Backend>(
    weights: &LinearWeights,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let weight = TensorData::new(weights.weight_flat(), [weights.d_out(), weights.d_in()]);
    let bias = TensorData::new(weights.bias.clone(), [weights.d_out()]);
    (
        Tensor::from_data(weight, device),
        Tensor::from_data(bias, device),
    )
}

/// Tensors `([out, in], [out])` to host weights.
pub fn tensors_to_weights<B: Backend>(weight: Tensor<B, 2>, bias: Tensor<B, 1>) -> LinearWeights {
    let d_in = weight.shape()[1];
    LinearWeights::from_flat(&to_f64(weight), &to_f64(bias), d_in)
}

/// Checks that tensors created on `device` will have `B`'s float type. Burn 0.21 keeps
/// one default float type per device type per process, fixed by the first tensor made:
/// after `NdArray<f32>` has run, `NdArray<f64>` tensors on the same device would silently
/// be f32. This locks the default to `B`'s type if nothing did yet, and reports a
/// mismatch otherwise.
pub fn check_device_precision<B: Backend>(device: &B::Device) -> crate::error::Result<()> {
    use burn::tensor::Element;
    let wanted = <B::FloatElem as Element>::dtype();
    let actual: burn::tensor::DType = burn::tensor::get_device_settings::<B>(device)
        .float_dtype
        .into();
    // Flex has one backend type and takes its float type from the device settings.
    if actual == wanted || B::name(device) == "flex" {
        Ok(())
    } else {
        Err(crate::error::MamlError::Precision {
            backend: B::name(device),
            wanted: format!("{wanted:?}"),
            actual: format!("{actual:?}"),
        })
    }
}

/// Reads a tensor's values as `f64`, row-major.
pub fn to_f64<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f64> {
    tensor.into_data().iter::<f64>().collect()
}
