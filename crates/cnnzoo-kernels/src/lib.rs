//! CPU fast paths for cnnzoo's networks.
//!
//! [`conv`] holds the kernels on plain NCHW slices (convolution forward, backward-data and
//! backward-weight as im2col + GEMM, or [`direct`] kernels, or [`winograd`] F(4x4, 3x3) for
//! 3x3s over 32-256 channels (32-512 at inference), or [`pointwise`] for 1x1s and, over
//! their im2col matrix, the forward pass of the others without groups that no other kernel
//! takes),
//! [`batch_norm`](mod@batch_norm) (BatchNorm in one or two passes), [`residual`] (the fused
//! block ends), [`shortcut`] (option A's zero-pad shortcut, one pass each way),
//! [`squeeze_excite`] (an SE unit fused with its block end), [`pool`] (max pooling) and
//! [`weight_cache`] (inference's Winograd-transformed weights, kept between calls);
//! [`precision`] runs the convolutions of the GPU backends in bf16 or f16 (mixed precision);
//! [`backend`] makes them a Burn backend extension with its own autodiff backward, and
//! [`conv2d`], [`batch_norm_train`], [`batch_norm()`] and [`max_pool2d`] are among the
//! calls the networks make.

pub mod backend;
pub mod batch_norm;
mod buffer;
pub mod conv;
pub mod direct;
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

pub use backend::{
    ConvKernels, add_relu, batch_norm, batch_norm_train, conv2d, conv2d_add_relu, conv2d_relu,
    max_pool2d, scale_add_relu, se_scale_add_relu, uses_kernels, zero_pad_shortcut,
};
pub use conv::ConvGeometry;
pub use precision::{Precision, autocast, set_autocast};
