//! Twice-differentiable layers, as Burn modules named and shaped as `burn-nn` names them.
//!
//! Burn 0.21 cannot differentiate its fused `linear`, its pooling ops or
//! `burn::nn::BatchNorm`'s running statistics twice (the statistics' `detach` only
//! detaches the outer autodiff level), so second-order MAML cannot run through those
//! `burn::nn` layers. The layers here have the same shape of API (a
//! `#[derive(Config)]` config, `init(&device)`, `forward`) and are written only with
//! operations Burn differentiates twice: `matmul` + `add`, `conv2d`, `reshape`,
//! `max_dim`, `mean_dim` and elementwise ops.
//!
//! Images are Burn's `[n, C, H, W]`. A model reaches them from the seam's
//! `x [tasks, n, C·H·W]` by a `reshape`:
//!
//! ```
//! use burn_ndarray::NdArray;
//! use burn::prelude::*;
//! use maml_core::nn::{BatchNormConfig, Conv2dConfig, MaxPool2dConfig};
//!
//! let device = Default::default();
//! let conv = Conv2dConfig::new([1, 8], [3, 3]).with_padding([1, 1]).init::<NdArray>(&device);
//! let norm = BatchNormConfig::new(8).init::<NdArray>(&device);
//! let pool = MaxPool2dConfig::new([2, 2]).init();
//! let x = Tensor::<NdArray, 3>::ones([1, 4, 28 * 28], &device); // [tasks, n, C·H·W]
//! let images = x.reshape([4, 1, 28, 28]);                        // [n, C, H, W]
//! let h = pool.forward(burn::tensor::activation::relu(norm.forward(conv.forward(images))));
//! assert_eq!(h.dims(), [4, 8, 14, 14]);
//! ```

mod conv;
mod linear;
mod norm;
mod pool;

pub use conv::{Conv2d, Conv2dConfig};
pub use linear::{Linear, LinearConfig};
pub use norm::{BatchNorm, BatchNormConfig};
pub use pool::{AvgPool2d, AvgPool2dConfig, Flatten, GlobalAvgPool2d, MaxPool2d, MaxPool2dConfig};
