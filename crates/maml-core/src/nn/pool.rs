//! Pooling and flattening, as `reshape` + `max_dim` / `mean_dim` (Burn 0.21's pooling
//! ops have no second derivative).

use burn::config::Config;
use burn::module::Module;
use burn::prelude::*;

/// Configuration of a [`MaxPool2d`] layer.
#[derive(Config, Debug)]
pub struct MaxPool2dConfig {
    /// The window's size, `[k_h, k_w]`; the stride is the window's size (PyTorch's default).
    pub kernel_size: [usize; 2],
}

/// Configuration of an [`AvgPool2d`] layer.
#[derive(Config, Debug)]
pub struct AvgPool2dConfig {
    /// The window's size, `[k_h, k_w]`; the stride is the window's size (PyTorch's default).
    pub kernel_size: [usize; 2],
}

/// Max pooling over non-overlapping windows, `[n, C, H, W] -> [n, C, H / k_h, W / k_w]`;
/// rows and columns left over are dropped (PyTorch's floor mode).
#[derive(Module, Clone, Debug)]
pub struct MaxPool2d {
    /// The window's size, `[k_h, k_w]`.
    pub kernel_size: [usize; 2],
}

/// Average pooling over non-overlapping windows, `[n, C, H, W] -> [n, C, H / k_h,
/// W / k_w]`; rows and columns left over are dropped.
#[derive(Module, Clone, Debug)]
pub struct AvgPool2d {
    /// The window's size, `[k_h, k_w]`.
    pub kernel_size: [usize; 2],
}

/// The mean over positions, `[n, C, H, W] -> [n, C]` (an adaptive average pool to 1x1,
/// flattened).
#[derive(Module, Clone, Debug, Default)]
pub struct GlobalAvgPool2d;

/// `[n, C, H, W] -> [n, C·H·W]`, channel-major (as `torch.flatten(x, 1)`).
#[derive(Module, Clone, Debug, Default)]
pub struct Flatten;

impl MaxPool2dConfig {
    /// A new [`MaxPool2d`] layer.
    pub fn init(&self) -> MaxPool2d {
        MaxPool2d {
            kernel_size: self.kernel_size,
        }
    }
}

impl AvgPool2dConfig {
    /// A new [`AvgPool2d`] layer.
    pub fn init(&self) -> AvgPool2d {
        AvgPool2d {
            kernel_size: self.kernel_size,
        }
    }
}

/// How a window is reduced to one value.
#[derive(Clone, Copy)]
enum Reduce {
    Max,
    Mean,
}

/// `x [n, C, H, W]` pooled over `k`-sized windows of `axis` (2: rows, 3: columns), the
/// leftover rows or columns dropped: a split of the axis and one reduction. The slice of
/// the leftover is copied (an elementwise op) before the split: reshaping a sliced view
/// gave wrong values on wgpu (cubecl 0.10, lavapipe), and so did one rank-6 split of both
/// axes at once.
fn pool_axis<B: Backend>(x: Tensor<B, 4>, axis: usize, k: usize, reduce: Reduce) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let len = if axis == 2 { h } else { w };
    let kept = len / k * k;
    let x = if kept == len {
        x
    } else if axis == 2 {
        x.slice([0..n, 0..c, 0..kept, 0..w]).mul_scalar(1.0)
    } else {
        x.slice([0..n, 0..c, 0..h, 0..kept]).mul_scalar(1.0)
    };
    let (split, out): (Tensor<B, 5>, [usize; 4]) = if axis == 2 {
        (x.reshape([n, c, kept / k, k, w]), [n, c, kept / k, w])
    } else {
        (x.reshape([n, c, h, kept / k, k]), [n, c, h, kept / k])
    };
    let window_axis = axis + 1;
    let pooled = match reduce {
        Reduce::Max => split.max_dim(window_axis),
        Reduce::Mean => split.mean_dim(window_axis),
    };
    pooled.reshape(out)
}

impl MaxPool2d {
    /// `input [n, C, H, W] -> [n, C, H / k_h, W / k_w]`.
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [kh, kw] = self.kernel_size;
        pool_axis(pool_axis(input, 2, kh, Reduce::Max), 3, kw, Reduce::Max)
    }
}

impl AvgPool2d {
    /// `input [n, C, H, W] -> [n, C, H / k_h, W / k_w]`.
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [kh, kw] = self.kernel_size;
        pool_axis(pool_axis(input, 2, kh, Reduce::Mean), 3, kw, Reduce::Mean)
    }
}

impl GlobalAvgPool2d {
    /// `input [n, C, H, W] -> [n, C]`.
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, _, _] = input.dims();
        input.mean_dim(2).mean_dim(3).reshape([n, c])
    }
}

impl Flatten {
    /// `input [n, C, H, W] -> [n, C·H·W]`.
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, h, w] = input.dims();
        input.reshape([n, c * h * w])
    }
}
