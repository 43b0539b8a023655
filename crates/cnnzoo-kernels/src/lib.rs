//! CPU fast paths for cnnzoo's networks, as Burn backend extensions.
//!
//! The crate has two layers. [`ops`] is what the networks call, one module per operation:
//! convolution, BatchNorm, a residual block's end, the SE unit, the zero-pad shortcut and max
//! pooling. Each is a Burn backend extension. It runs cnnzoo's kernels on Flex (Burn's CPU
//! backend), with its own backward under autodiff, and Burn's own operations on every other
//! backend.
//!
//! Underneath are the kernels on plain NCHW `f32` slices. [`conv`] sends each convolution to
//! one of four paths: [`winograd`] F(4x4, 3x3) for stride-1 3x3s over 32-256 channels,
//! [`pointwise`] for 1x1s, [`direct`] for convolutions over few channels, and [`im2col`] +
//! GEMM for the rest. They share [`geometry`] (a convolution's shape and its epilogue) and one
//! register-tile microkernel. The other kernels are [`batch_norm`](mod@batch_norm),
//! [`residual`], [`squeeze_excite`], [`shortcut`] and [`pool`]. [`weight_cache`] keeps
//! inference's Winograd-transformed weights between calls, and [`precision`] runs the GPU
//! backends' convolutions in bf16 or f16.

pub mod batch_norm;
mod buffer;
pub mod conv;
pub mod direct;
pub mod geometry;
pub mod im2col;
mod microkernel;
pub mod ops;
pub mod pointwise;
pub mod pool;
pub mod precision;
pub mod residual;
pub mod shortcut;
mod simd;
pub mod squeeze_excite;
#[cfg(feature = "tch")]
pub mod torch;
pub mod weight_cache;
pub mod winograd;

pub use geometry::{ConvGeometry, Epilogue};
pub use ops::batch_norm::batch_norm;
pub use ops::{
    add_relu, batch_norm_train, conv2d, conv2d_add_relu, conv2d_relu, max_pool2d, scale_add_relu,
    se_scale_add_relu, uses_kernels, zero_pad_shortcut,
};
pub use precision::{Precision, autocast, set_autocast};
