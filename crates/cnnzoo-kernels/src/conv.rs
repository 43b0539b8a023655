//! 2-D convolution on NCHW `f32` slices: forward, backward-data and backward-weight, each
//! sent to the kernel that computes its geometry fastest: [`winograd`]'s F(4x4, 3x3)
//! (stride-1 3x3s over 32-256 channels, forward and input gradient), [`pointwise`]'s (1x1s,
//! forward and stride-1 input gradient; and the forward pass of the other convolutions
//! without groups that would reach the GEMM, such as ResNet-50's strided 3x3s, as a 1x1 over
//! the batch's im2col matrix), [`direct`]'s (convolutions over few channels), or else
//! [`im2col`]'s GEMMs.

use crate::geometry::{ConvGeometry, Epilogue};
use crate::{direct, im2col, pointwise, winograd};

/// Forward convolution without bias: `x` `[N, C, H, W]`, `weight` `[O, C/g, kh, kw]`;
/// returns `[N, O, OH, OW]`.
pub fn conv2d_forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    conv2d_forward_with(g, x, weight, Epilogue::default())
}

/// [`conv2d_forward`] with `epilogue` applied to every output value as it is written.
pub fn conv2d_forward_with(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    epilogue: Epilogue,
) -> Vec<f32> {
    if winograd::applies(g) {
        winograd::forward_with(g, x, weight, epilogue)
    } else if pointwise::applies(g) {
        pointwise::forward_with(g, x, weight, epilogue)
    } else if direct::applies(g) {
        direct::forward_with(g, x, weight, epilogue)
    } else if pointwise::applies_gathered(g) {
        pointwise::forward_gathered_with(g, x, weight, epilogue)
    } else {
        im2col::forward_with(g, x, weight, epilogue)
    }
}

/// Gradient with respect to the input: `dy` `[N, O, OH, OW]`, `weight` `[O, C/g, kh, kw]`;
/// returns `[N, C, H, W]`.
pub fn conv2d_backward_data(g: &ConvGeometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    if winograd::applies(g) {
        winograd::backward_data(g, dy, weight)
    } else if pointwise::applies_to_input_gradient(g) {
        pointwise::backward_data(g, dy, weight)
    } else if direct::applies_to_input_gradient(g) {
        direct::backward_data(g, dy, weight)
    } else {
        im2col::backward_data(g, dy, weight)
    }
}

/// Gradient with respect to the weight: `x` `[N, C, H, W]`, `dy` `[N, O, OH, OW]`; returns
/// `[O, C/g, kh, kw]`. Each worker accumulates its own images, then the partial sums are added.
pub fn conv2d_backward_weight(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if direct::applies_to_weight_gradient(g) {
        direct::backward_weight(g, x, dy)
    } else {
        im2col::backward_weight(g, x, dy)
    }
}
