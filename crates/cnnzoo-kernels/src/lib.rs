//! CPU fast paths for cnnzoo's networks.
//!
//! [`conv`] holds the kernels on plain NCHW slices (convolution forward, backward-data and
//! backward-weight as im2col + GEMM); [`backend`] makes them a Burn backend extension with its
//! own autodiff backward, and [`conv2d`] is the call the networks make.

pub mod backend;
pub mod conv;

pub use backend::{ConvKernels, conv2d};
pub use conv::ConvGeometry;
