//! Option A's shortcut (the CIFAR ResNets') as a Burn operation ([`zero_pad_shortcut`]):
//! subsample, then append zero channels. On Flex one pass each way (the kernels of
//! [`crate::shortcut`]) with its own backward; Burn's operations elsewhere.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Slice, Tensor};

use super::device::uses_kernels;
use super::flex::{f32s, flex_tensor};
use crate::shortcut::{self, ZeroPadShape};

/// Option A's zero-pad shortcut and its backward.
#[backend_extension(Flex, Autodiff)]
pub trait ShortcutOps: Backend {
    /// Option A's shortcut: `x` `[N, C, H, W]` subsampled by `stride` (every `stride`-th row
    /// and column from the first), then `extra` zero channels: `[N, C + extra, ceil(H /
    /// stride), ceil(W / stride)]`.
    fn cnnzoo_zero_pad_shortcut(
        x: FloatTensor<Self>,
        stride: usize,
        extra: usize,
    ) -> FloatTensor<Self> {
        burn_zero_pad_shortcut::<Self>(x, stride, extra)
    }

    /// Gradient of [`Self::cnnzoo_zero_pad_shortcut`]'s input (of shape `input`) from its
    /// output's gradient.
    fn cnnzoo_zero_pad_shortcut_backward(
        grad: FloatTensor<Self>,
        input: [usize; 4],
        stride: usize,
    ) -> FloatTensor<Self> {
        burn_zero_pad_shortcut_backward::<Self>(grad, input, stride)
    }
}

/// Every `stride`-th index of a dimension, from the first.
fn every(stride: usize) -> Slice {
    Slice::new(0, None, stride as isize)
}

/// [`ShortcutOps::cnnzoo_zero_pad_shortcut`] from Burn's operations.
fn burn_zero_pad_shortcut<B: Backend>(
    x: FloatTensor<B>,
    stride: usize,
    extra: usize,
) -> FloatTensor<B> {
    // A zero stride reaches `Slice::new`, which refuses it, instead of passing `x` through.
    let x = if stride != 1 {
        B::float_slice(
            x,
            &[Slice::full(), Slice::full(), every(stride), every(stride)],
        )
    } else {
        x
    };
    if extra == 0 {
        return x;
    }
    let d = x.shape();
    let shape = burn::tensor::Shape::new([d[0], extra, d[2], d[3]]);
    let zeros = B::float_zeros(shape, &x.device(), x.dtype().into());
    B::float_cat(vec![x, zeros], 1)
}

/// [`ShortcutOps::cnnzoo_zero_pad_shortcut_backward`] from Burn's operations.
fn burn_zero_pad_shortcut_backward<B: Backend>(
    grad: FloatTensor<B>,
    input: [usize; 4],
    stride: usize,
) -> FloatTensor<B> {
    let channels = Slice::new(0, Some(input[1] as isize), 1);
    let grad = B::float_slice(
        grad,
        &[Slice::full(), channels, Slice::full(), Slice::full()],
    );
    if stride == 1 {
        return grad;
    }
    let (device, dtype) = (grad.device(), grad.dtype());
    let zeros = B::float_zeros(burn::tensor::Shape::new(input), &device, dtype.into());
    let at = [Slice::full(), Slice::full(), every(stride), every(stride)];
    B::float_slice_assign(zeros, &at, grad)
}

/// The option-A shortcut of an `f32` `[N, C, H, W]` tensor `x` with a positive stride, and
/// its output shape; `None` for anything else (Burn's operations handle it).
fn zero_pad_shape(
    x: &FlexTensor,
    stride: usize,
    extra: usize,
) -> Option<(ZeroPadShape, [usize; 4])> {
    if x.dtype() != DType::F32 || x.shape().num_dims() != 4 {
        return None;
    }
    let shape = ZeroPadShape {
        input: x.shape().dims::<4>(),
        stride,
        extra,
    };
    Some((shape, shape.output()?))
}

impl ShortcutOps for Flex {
    fn cnnzoo_zero_pad_shortcut(x: FlexTensor, stride: usize, extra: usize) -> FlexTensor {
        let Some((shape, output)) = zero_pad_shape(&x, stride, extra) else {
            return burn_zero_pad_shortcut::<Flex>(x, stride, extra);
        };
        flex_tensor(shortcut::zero_pad_forward(shape, &f32s(&x)), output)
    }

    fn cnnzoo_zero_pad_shortcut_backward(
        grad: FlexTensor,
        input: [usize; 4],
        stride: usize,
    ) -> FlexTensor {
        // The gradient must be the shape the forward pass gave; anything else is Burn's.
        let shape = zero_pad_shape(&grad, 1, 0).and_then(|(_, [n, c, h, w])| {
            let extra = c.checked_sub(input[1])?;
            let shape = ZeroPadShape {
                input,
                stride,
                extra,
            };
            (shape.output() == Some([n, c, h, w])).then_some(shape)
        });
        let Some(shape) = shape else {
            return burn_zero_pad_shortcut_backward::<Flex>(grad, input, stride);
        };
        flex_tensor(shortcut::zero_pad_backward(shape, &f32s(&grad)), input)
    }
}

impl<B: Backend + ShortcutOps, C: CheckpointStrategy> ShortcutOps for Autodiff<B, C> {
    fn cnnzoo_zero_pad_shortcut(
        x: FloatTensor<Self>,
        stride: usize,
        extra: usize,
    ) -> FloatTensor<Self> {
        let d = x.shape();
        let input = [d[0], d[1], d[2], d[3]];
        match ZeroPadShortcutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (input, stride),
                B::cnnzoo_zero_pad_shortcut(x.into_primitive(), stride, extra),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_zero_pad_shortcut(
                x.into_primitive(),
                stride,
                extra,
            )),
        }
    }
}

/// The backward step of [`ShortcutOps::cnnzoo_zero_pad_shortcut`] under autodiff; its state
/// is the input's shape and the stride.
#[derive(Debug)]
struct ZeroPadShortcutBackward;

impl<B: Backend + ShortcutOps> Backward<B, 1> for ZeroPadShortcutBackward {
    type State = ([usize; 4], usize);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let (input, stride) = ops.state;
            let dx = B::cnnzoo_zero_pad_shortcut_backward(grad, input, stride);
            grads.register::<B>(node.id, dx);
        }
    }
}

/// Option A's shortcut (the CIFAR ResNets'): `x` `[N, C, H, W]` subsampled by `stride` (every
/// `stride`-th row and column from the first), then `extra` zero channels appended. On the CPU
/// (Flex) one pass each way with its own backward; elsewhere Burn's operations: the
/// subsampling as a 1x1 average pooling with that stride (the same values; Burn's LibTorch
/// backend cannot take the backward of a strided `slice`, whose `slice_assign` views a
/// non-contiguous gradient), then `cat` with zeros. Panics, saying so, on a zero stride (a
/// block's configuration refuses one with a readable error before any tensor is built).
pub fn zero_pad_shortcut(x: Tensor<4>, stride: usize, extra: usize) -> Tensor<4> {
    assert!(
        stride > 0,
        "the zero-pad shortcut's stride must be positive"
    );
    if !uses_kernels(&x.device()) || x.dims().contains(&0) {
        return zero_pad_shortcut_with_burn(x, stride, extra);
    }
    Tensor::from_dispatch(<Dispatch as ShortcutOps>::cnnzoo_zero_pad_shortcut(
        x.into_dispatch(),
        stride,
        extra,
    ))
}

/// [`zero_pad_shortcut`] from Burn's operations, for backends without cnnzoo's kernels.
fn zero_pad_shortcut_with_burn(x: Tensor<4>, stride: usize, extra: usize) -> Tensor<4> {
    let x = if stride == 1 {
        x
    } else if x.dims().contains(&0) {
        let s = stride as isize;
        x.slice(burn::tensor::s![.., .., ..;s, ..;s])
    } else {
        let options = burn::tensor::ops::AvgPoolOptions::new([1, 1]).with_stride([stride; 2]);
        burn::tensor::module::avg_pool2d(x, options)
    };
    if extra == 0 {
        return x;
    }
    let [n, _, h, w] = x.dims();
    let zeros = Tensor::<4>::zeros([n, extra, h, w], &x.device());
    Tensor::cat(vec![x, zeros], 1)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::ops::flex::test_support::{close, tensor};

    /// The zero-pad shortcut's defaults (Burn's operations, what a GPU backend runs) against
    /// the Flex kernels, forward and backward, on odd sizes and strides 1 to 3; a gradient of
    /// another shape goes to the defaults (which report it) instead of being misread.
    #[test]
    fn zero_pad_shortcut_defaults_match_the_kernels() {
        for (input, stride, extra) in [
            ([2, 3, 5, 7], 2, 3),
            ([1, 2, 7, 4], 3, 0),
            ([2, 2, 3, 3], 1, 1),
        ] {
            let x = tensor(&input, 21, 0.0);
            let ours = Flex::cnnzoo_zero_pad_shortcut(x.clone(), stride, extra);
            let burn = burn_zero_pad_shortcut::<Flex>(x, stride, extra);
            close("output", &ours, &burn);
            let grad = tensor(&ours.shape().dims::<4>(), 22, 0.0);
            let ours = Flex::cnnzoo_zero_pad_shortcut_backward(grad.clone(), input, stride);
            let burn = burn_zero_pad_shortcut_backward::<Flex>(grad, input, stride);
            close("input gradient", &ours, &burn);
            assert_eq!(ours.shape().dims::<4>(), input);
        }
        // Narrower than the input: not this shortcut's gradient.
        let narrow = tensor(&[2, 2, 3, 4], 23, 0.0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Flex::cnnzoo_zero_pad_shortcut_backward(narrow, [2, 3, 5, 7], 2)
        }));
        assert!(
            caught.is_err(),
            "a gradient narrower than the input was accepted"
        );
    }

    /// The GPU backends' shortcut (1x1 average pooling + `cat`) against the CPU kernel:
    /// output and input gradient equal, odd sizes and stride 3 included.
    #[test]
    fn zero_pad_shortcut_through_burn_matches_the_kernel() {
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        device.seed(9);
        for (input, stride, extra) in [
            ([2, 3, 5, 7], 2, 3),
            ([1, 2, 7, 4], 3, 0),
            ([2, 2, 3, 3], 1, 1),
            ([2, 4, 8, 8], 2, 4),
        ] {
            let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
            let run = |burn: bool| {
                let x = x.clone().require_grad();
                let y = if burn {
                    zero_pad_shortcut_with_burn(x.clone(), stride, extra)
                } else {
                    zero_pad_shortcut(x.clone(), stride, extra)
                };
                let weights = Tensor::<4>::random(y.dims(), Distribution::Default, &device);
                let out = y.clone().into_data().try_to_vec::<f32>().unwrap();
                let g = (y * weights).sum().backward();
                let gx = x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap();
                (out, gx)
            };
            device.seed(10);
            let ours = run(false);
            device.seed(10);
            let burns = run(true);
            assert_eq!(ours, burns, "{input:?} stride {stride} extra {extra}");
        }
    }
}
