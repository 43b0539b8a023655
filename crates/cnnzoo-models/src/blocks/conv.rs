//! Applying a `Conv2d` module through cnnzoo's convolution.
//!
//! Burn's `Conv2d` keeps the parameters (and so the weight files' layout); the arithmetic goes
//! through [`cnnzoo_kernels::conv2d`], which runs cnnzoo's CPU kernels on Flex and Burn's own
//! convolution on every other backend.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// `conv.forward(x)`, computed by [`cnnzoo_kernels::conv2d`].
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => [
            same_padding(conv.kernel_size[0], conv.stride[0], height),
            same_padding(conv.kernel_size[1], conv.stride[1], width),
        ],
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    cnnzoo_kernels::conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

/// `(begin, end)` padding that gives `ceil(size / stride)` outputs, as Burn's `Same` computes it
/// (its helper is private to burn-nn).
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 { ((out - 1) * stride + kernel).saturating_sub(size) } else { 0 };
    (total / 2, total - total / 2)
}
