//! Max pooling as a Burn operation ([`max_pool2d`]): the kernel of [`crate::pool`] for
//! inference on Flex, Burn's operation otherwise.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Tensor};

use super::device::inference_device;
use super::flex::{f32s, flex_tensor};
use crate::pool;

/// Max pooling without dilation: cnnzoo's kernel on Flex, Burn's elsewhere.
#[backend_extension(Flex, Autodiff)]
pub trait PoolOps: Backend {
    /// Max pooling of `x` `[N, C, H, W]` without dilation, `padding` on both sides of each
    /// dimension, as Burn's `max_pool2d`.
    fn cnnzoo_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
    ) -> FloatTensor<Self> {
        Self::max_pool2d(x, kernel, stride, padding, [1, 1], ceil_mode)
    }
}

impl PoolOps for Flex {
    fn cnnzoo_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
    ) -> FlexTensor {
        let geometry = (x.dtype() == DType::F32 && x.shape().num_dims() == 4).then(|| {
            let shape = x.shape().dims::<4>();
            pool::PoolGeometry::nchw(shape, kernel, stride, padding, ceil_mode)
        });
        // What the kernel does not cover (other types, windows that do not fit) is Burn's, which
        // reports what is wrong.
        let Some((g, [oh, ow])) = geometry.and_then(|g| Some((g, g.out_size()?))) else {
            return Flex::max_pool2d(x, kernel, stride, padding, [1, 1], ceil_mode);
        };
        flex_tensor(
            pool::max_pool2d(&g, &f32s(&x)),
            [g.batch, g.channels, oh, ow],
        )
    }
}

// Training keeps Burn's max pooling, whose backward needs the maxima's indices.
impl<B: Backend + PoolOps, C: CheckpointStrategy> PoolOps for Autodiff<B, C> {}

/// 2-D max pooling, as `burn::tensor::module::max_pool2d`: cnnzoo's kernel on the CPU (Flex)
/// without autodiff (inference) for symmetric padding and no dilation, Burn's operation
/// otherwise (training keeps Burn's backward, which needs the maxima's indices). Windows the
/// kernel declines (larger than the padded input, padding over half the window) get Burn's
/// result, an empty map for the former: the networks check shapes first
/// (`Pool2d::output_shape` in cnnzoo-models says which layer does not fit).
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    let symmetric = options.padding.iter().all(|&(a, b)| a == b);
    if !inference_device(&x.device()) || !symmetric || options.dilation != [1, 1] {
        return burn::tensor::module::max_pool2d(x, options);
    }
    Tensor::from_dispatch(<Dispatch as PoolOps>::cnnzoo_max_pool2d(
        x.into_dispatch(),
        options.kernel_size,
        options.stride,
        options.padding.map(|(a, _)| a),
        options.ceil_mode,
    ))
}
