//! The kernels as a Burn backend extension: an operation with a forward on Flex (Burn's CPU
//! backend) and its own backward under Autodiff.
//!
//! [`conv2d`] is what the networks call. On a Flex device (with or without autodiff) it runs
//! [`ConvKernels::cnnzoo_conv2d`]; on any other backend it is Burn's own `conv2d`, so a GPU
//! build keeps its fused, autotuned kernels. The choice is made here from the tensor's device,
//! never in the model code.

// The `tch` feature names Burn's LibTorch backend, which Burn 0.22 deprecates (see torch.rs).
#![cfg_attr(feature = "tch", allow(deprecated))]

use std::borrow::Cow;

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Slice, Tensor, TensorData};

use crate::batch_norm::{self, NormShape};
use crate::conv::{self, ConvGeometry};
use crate::pool;
use crate::residual;
use crate::shortcut::{self, ZeroPadShape};
use crate::squeeze_excite::{self, SeShape};
use crate::{weight_cache, winograd};

/// Convolution and BatchNorm with cnnzoo's kernels where the backend has them, Burn's elsewhere.
#[backend_extension(Flex, Autodiff, LibTorch: cfg(feature = "tch"))]
pub trait ConvKernels: Backend {
    /// 2-D convolution without bias (`x` `[N, C, H, W]`, `weight` `[O, C/g, kh, kw]`).
    fn cnnzoo_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// [`Self::cnnzoo_conv2d`] for inference, whose weights do not change between calls, so
    /// that a kernel may keep them transformed (no autodiff backward of its own: [`conv2d`]
    /// calls it only on devices without autodiff).
    fn cnnzoo_conv2d_inference(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// 2-D convolution with a bias per output channel, then ReLU when `relu`, for inference
    /// (no autodiff backward of its own: [`conv2d`] and [`conv2d_relu`] call it only on
    /// devices without autodiff).
    fn cnnzoo_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let y = Self::conv2d(x, weight, Some(bias), options);
        if relu { Self::relu(y) } else { y }
    }

    /// `relu(conv2d(x, weight, bias) + residual)`, `residual` of the output's shape: the last
    /// convolution of a residual branch with the block's addition and ReLU, for inference (no
    /// autodiff backward of its own: [`conv2d_add_relu`] calls it only on devices without
    /// autodiff).
    fn cnnzoo_conv2d_bias_add_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let y = Self::conv2d(x, weight, Some(bias), options);
        Self::relu(Self::float_add(y, residual))
    }

    /// Gradient of [`Self::cnnzoo_conv2d`] with respect to `x`.
    fn cnnzoo_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    /// Gradient of [`Self::cnnzoo_conv2d`] with respect to `weight`.
    fn cnnzoo_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, options)
    }

    /// BatchNorm with the batch's statistics, then ReLU when `relu`: returns the output, the
    /// mean and the biased variance (as Burn's `batch_norm_train`).
    fn cnnzoo_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_batch_norm_train::<Self>(x, gamma, beta, epsilon, relu)
    }

    /// Gradients of [`Self::cnnzoo_batch_norm_train`] with respect to `x`, `gamma` and `beta`.
    #[allow(clippy::too_many_arguments)]
    fn cnnzoo_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_batch_norm_train_backward::<Self>(x, gamma, beta, mean, variance, epsilon, relu, grad)
    }

    /// BatchNorm with given (running) statistics, then ReLU when `relu`.
    fn cnnzoo_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        burn_batch_norm_eval::<Self>(x, gamma, beta, mean, variance, epsilon, relu)
    }

    /// `relu(a + b)`: the end of a residual block.
    fn cnnzoo_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_add_relu::<Self>(a, b)
    }

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

    /// Gradient through a ReLU from its output `y`: `grad` where `y > 0`, else 0.
    fn cnnzoo_relu_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_relu_backward::<Self>(y, grad)
    }

    /// `relu(a * gates + b)` with `gates` `[N, C, 1, 1]`: the end of a residual block with a
    /// standard SE unit (its channel-wise axpy).
    fn cnnzoo_scale_add_relu(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burn_scale_add_relu::<Self>(a, gates, b)
    }

    /// Gradients of [`Self::cnnzoo_scale_add_relu`] with respect to `a`, `gates` and `b`,
    /// from its output `y`.
    fn cnnzoo_scale_add_relu_backward(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_scale_add_relu_backward::<Self>(a, gates, y, grad)
    }

    /// Squeeze and excitation of a standard SE unit on the branch `a` `[N, C, H, W]` with fc1
    /// `w1` `[R, C, 1, 1]`, `b1` `[R]` and fc2 `w2` `[C, R, 1, 1]`, `b2` `[C]`: returns the
    /// channel means `[N, C]`, the bottleneck after its ReLU `[N, R]` and the gates
    /// `[N, C, 1, 1]`.
    fn cnnzoo_se_excite(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_se_excite::<Self>(a, w1, b1, w2, b2)
    }

    /// `relu(a * gates + shortcut)` with the gates of [`Self::cnnzoo_se_excite`]: the end of
    /// a residual block with a standard SE unit, squeeze and excitation included.
    fn cnnzoo_se_scale_add_relu(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (_, _, gates) = Self::cnnzoo_se_excite(a.clone(), w1, b1, w2, b2);
        Self::cnnzoo_scale_add_relu(a, gates, shortcut)
    }

    /// Gradients of [`Self::cnnzoo_se_scale_add_relu`] with respect to `a`, `w1`, `b1`, `w2`,
    /// `b2` and the shortcut, from what [`Self::cnnzoo_se_excite`] returned and the output `y`.
    // The macro needs the tuple spelled out (it maps tuples, not aliases, across dispatch).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn cnnzoo_se_backward(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        squeezed: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        burn_se_backward::<Self>(a, w1, w2, squeezed, hidden, gates, y, grad)
    }
}

/// `[N, C]` or `[R, C]` view of a `[N, C, 1, 1]` / `[R, C, 1, 1]` tensor.
fn matrix<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let d = t.shape();
    B::float_reshape(t, burn::tensor::Shape::new([d[0], d[1]]))
}

/// `[1, K]` view of a bias `[K]`, to broadcast over the rows of an `[N, K]` matrix.
fn row<B: Backend>(b: FloatTensor<B>) -> FloatTensor<B> {
    let k = b.shape()[0];
    B::float_reshape(b, burn::tensor::Shape::new([1, k]))
}

/// [`ConvKernels::cnnzoo_se_excite`] from Burn's operations.
fn burn_se_excite<B: Backend>(
    a: FloatTensor<B>,
    w1: FloatTensor<B>,
    b1: FloatTensor<B>,
    w2: FloatTensor<B>,
    b2: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let squeezed = matrix::<B>(B::float_mean_dim(B::float_mean_dim(a, 3), 2));
    let z1 = B::float_matmul(squeezed.clone(), B::float_transpose(matrix::<B>(w1)));
    let hidden = B::relu(B::float_add(z1, row::<B>(b1)));
    let z2 = B::float_matmul(hidden.clone(), B::float_transpose(matrix::<B>(w2)));
    let gates = B::sigmoid(B::float_add(z2, row::<B>(b2)));
    let d = gates.shape();
    let gates = B::float_reshape(gates, burn::tensor::Shape::new([d[0], d[1], 1, 1]));
    (squeezed, hidden, gates)
}

/// [`ConvKernels::cnnzoo_se_backward`] from Burn's operations.
#[allow(clippy::too_many_arguments)]
fn burn_se_backward<B: Backend>(
    a: FloatTensor<B>,
    w1: FloatTensor<B>,
    w2: FloatTensor<B>,
    squeezed: FloatTensor<B>,
    hidden: FloatTensor<B>,
    gates: FloatTensor<B>,
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> SeGradTensors<B> {
    let (w1_shape, w2_shape, a_shape) = (w1.shape(), w2.shape(), a.shape());
    let plane = (a_shape[2] * a_shape[3]).max(1);
    let (da_scaled, dgates, dshortcut) =
        burn_scale_add_relu_backward::<B>(a, gates.clone(), y, grad);
    let g = matrix::<B>(gates);
    let one_minus_g = B::float_add_scalar(B::float_neg(g.clone()), 1.0.into());
    let dz2 = B::float_mul(B::float_mul(matrix::<B>(dgates), g), one_minus_g);
    let db2 = B::float_sum_dim(dz2.clone(), 0);
    let dw2 = B::float_matmul(B::float_transpose(dz2.clone()), hidden.clone());
    let dh = B::relu_backward(hidden, B::float_matmul(dz2, matrix::<B>(w2)));
    let db1 = B::float_sum_dim(dh.clone(), 0);
    let dw1 = B::float_matmul(B::float_transpose(dh.clone()), squeezed);
    let dsq = B::float_matmul(dh, matrix::<B>(w1));
    let d = dsq.shape();
    let dsq = B::float_reshape(dsq, burn::tensor::Shape::new([d[0], d[1], 1, 1]));
    let da = B::float_add(da_scaled, B::float_div_scalar(dsq, (plane as f64).into()));
    let flat = |t: FloatTensor<B>| {
        let n = t.shape().num_elements();
        B::float_reshape(t, burn::tensor::Shape::new([n]))
    };
    (
        da,
        B::float_reshape(dw1, w1_shape),
        flat(db1),
        B::float_reshape(dw2, w2_shape),
        flat(db2),
        dshortcut,
    )
}

/// Gradients of the fused SE block end: branch, fc1 weight and bias, fc2 weight and bias,
/// shortcut.
type SeGradTensors<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
);

/// [`ConvKernels::cnnzoo_add_relu`] from Burn's operations.
fn burn_add_relu<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::relu(B::float_add(a, b))
}

/// Every `stride`-th index of a dimension, from the first.
fn every(stride: usize) -> Slice {
    Slice::new(0, None, stride as isize)
}

/// [`ConvKernels::cnnzoo_zero_pad_shortcut`] from Burn's operations.
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

/// [`ConvKernels::cnnzoo_zero_pad_shortcut_backward`] from Burn's operations.
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

/// [`ConvKernels::cnnzoo_relu_backward`] from Burn's operations.
fn burn_relu_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    B::relu_backward(y, grad)
}

/// [`ConvKernels::cnnzoo_scale_add_relu`] from Burn's operations.
fn burn_scale_add_relu<B: Backend>(
    a: FloatTensor<B>,
    gates: FloatTensor<B>,
    b: FloatTensor<B>,
) -> FloatTensor<B> {
    B::relu(B::float_add(B::float_mul(a, gates), b))
}

/// [`ConvKernels::cnnzoo_scale_add_relu_backward`] from Burn's operations.
fn burn_scale_add_relu_backward<B: Backend>(
    a: FloatTensor<B>,
    gates: FloatTensor<B>,
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let db = B::relu_backward(y, grad);
    let da = B::float_mul(db.clone(), gates);
    let dgates = B::float_sum_dim(B::float_sum_dim(B::float_mul(db.clone(), a), 3), 2);
    (da, dgates, db)
}

/// [`ConvKernels::cnnzoo_batch_norm_train`] from Burn's operations.
fn burn_batch_norm_train<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let output = if relu { B::relu(r.output) } else { r.output };
    (output, r.mean, r.variance)
}

/// [`ConvKernels::cnnzoo_batch_norm_train_backward`] from Burn's operations.
#[allow(clippy::too_many_arguments)]
pub(crate) fn burn_batch_norm_train_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let grad = if relu {
        let pre = B::batch_norm(
            x.clone(),
            gamma.clone(),
            beta,
            mean.clone(),
            variance.clone(),
            epsilon,
        );
        B::relu_backward(pre, grad)
    } else {
        grad
    };
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

/// [`ConvKernels::cnnzoo_batch_norm_eval`] from Burn's operations.
fn burn_batch_norm_eval<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> FloatTensor<B> {
    let y = B::batch_norm(x, gamma, beta, mean, variance, epsilon);
    if relu { B::relu(y) } else { y }
}

/// The geometry of a convolution from its tensors' shapes.
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> ConvGeometry {
    let xs = x.shape();
    let ws = weight.shape();
    ConvGeometry {
        batch: xs[0],
        in_channels: xs[1],
        in_size: [xs[2], xs[3]],
        out_channels: ws[0],
        kernel: [ws[2], ws[3]],
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
        groups: options.groups,
    }
}

/// The tensor's elements as a contiguous `f32` slice (borrowed when already so).
fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("f32 tensor")
                .to_vec(),
        ),
    }
}

fn flex_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether the fast path applies: `f32` tensors of rank 4 whose shapes agree (the weight's
/// input channels with `x`'s, an output gradient with the output) on a geometry the kernels
/// accept. Anything else goes to Burn's operation, which reports the mismatch itself.
fn fast_path(tensors: &[&FlexTensor], options: &ConvOptions<2>) -> bool {
    if !tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape().num_dims() == 4)
    {
        return false;
    }
    let g = geometry(tensors[0], tensors[1], options);
    let Some([oh, ow]) = g.validate().ok().and_then(|()| g.out_size()) else {
        return false;
    };
    let channels_agree = tensors[1].shape()[1] * g.groups == g.in_channels;
    let grad_agrees = tensors
        .get(2)
        .is_none_or(|dy| dy.shape().dims::<4>() == [g.batch, g.out_channels, oh, ow]);
    channels_agree && grad_agrees
}

/// The forward convolution of an inference-only operation (its weights do not change from call
/// to call): Winograd from transformed weights kept between calls where
/// [`winograd::applies_transformed`] holds and the cache has room, else
/// [`conv::conv2d_forward_with`].
fn inference_forward(
    g: &ConvGeometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    epilogue: conv::Epilogue,
) -> Vec<f32> {
    if winograd::applies_transformed(g)
        && let Some(u) = weight_cache::transformed(weight, winograd::transformed_len(g), || {
            winograd::forward_weights(g, &f32s(weight))
        })
    {
        return winograd::forward_transformed(g, &f32s(x), &u, epilogue);
    }
    conv::conv2d_forward_with(g, &f32s(x), &f32s(weight), epilogue)
}

impl ConvKernels for Flex {
    fn cnnzoo_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if !fast_path(&[&x, &weight], &options) {
            return Flex::conv2d(x, weight, None, options);
        }
        let g = geometry(&x, &weight, &options);
        let [oh, ow] = g.out_size().expect("validated");
        let y = conv::conv2d_forward(&g, &f32s(&x), &f32s(&weight));
        flex_tensor(y, [g.batch, g.out_channels, oh, ow])
    }

    fn cnnzoo_conv2d_inference(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !fast_path(&[&x, &weight], &options) {
            return Flex::conv2d(x, weight, None, options);
        }
        let g = geometry(&x, &weight, &options);
        let [oh, ow] = g.out_size().expect("validated");
        let y = inference_forward(&g, &x, &weight, conv::Epilogue::default());
        flex_tensor(y, [g.batch, g.out_channels, oh, ow])
    }

    fn cnnzoo_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
        relu: bool,
    ) -> FlexTensor {
        if !fast_path(&[&x, &weight], &options) || !bias_fits(&bias, &weight) {
            let y = Flex::conv2d(x, weight, Some(bias), options);
            return if relu { Flex::relu(y) } else { y };
        }
        let g = geometry(&x, &weight, &options);
        let [oh, ow] = g.out_size().expect("validated");
        let bias = f32s(&bias);
        let epilogue = conv::Epilogue {
            bias: Some(&bias),
            residual: None,
            relu,
        };
        let y = inference_forward(&g, &x, &weight, epilogue);
        flex_tensor(y, [g.batch, g.out_channels, oh, ow])
    }

    fn cnnzoo_conv2d_bias_add_relu(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let fits = fast_path(&[&x, &weight], &options)
            && bias_fits(&bias, &weight)
            && residual.dtype() == DType::F32;
        let g = fits.then(|| geometry(&x, &weight, &options));
        let out = g.as_ref().and_then(|g| {
            let [oh, ow] = g.out_size()?;
            let shape = [g.batch, g.out_channels, oh, ow];
            shaped(&residual, &shape).then_some(shape)
        });
        let (Some(g), Some(shape)) = (g, out) else {
            let y = Flex::conv2d(x, weight, Some(bias), options);
            return burn_add_relu::<Flex>(y, residual);
        };
        let (bias, residual) = (f32s(&bias), f32s(&residual));
        let epilogue = conv::Epilogue {
            bias: Some(&bias),
            residual: Some(&residual),
            relu: true,
        };
        let y = inference_forward(&g, &x, &weight, epilogue);
        flex_tensor(y, shape)
    }

    fn cnnzoo_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !fast_path(&[&x, &weight, &grad], &options) {
            return Flex::conv2d_x_backward(x, weight, grad, options);
        }
        let g = geometry(&x, &weight, &options);
        let dx = conv::conv2d_backward_data(&g, &f32s(&grad), &f32s(&weight));
        flex_tensor(dx, [g.batch, g.in_channels, g.in_size[0], g.in_size[1]])
    }

    fn cnnzoo_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !fast_path(&[&x, &weight, &grad], &options) {
            return Flex::conv2d_weight_backward(x, weight, grad, options);
        }
        let g = geometry(&x, &weight, &options);
        let dw = conv::conv2d_backward_weight(&g, &f32s(&x), &f32s(&grad));
        let ws = weight.shape();
        flex_tensor(dw, [ws[0], ws[1], ws[2], ws[3]])
    }

    fn cnnzoo_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(s) = norm_shape(&[&x, &gamma, &beta]) else {
            return burn_batch_norm_train::<Flex>(x, gamma, beta, epsilon, relu);
        };
        let (y, mean, var) =
            batch_norm::forward_train(s, &f32s(&x), &f32s(&gamma), &f32s(&beta), epsilon, relu);
        (like(y, &x), vector(mean), vector(var))
    }

    fn cnnzoo_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(s) = norm_shape(&[&x, &gamma, &beta, &mean, &variance, &grad]) else {
            return burn_batch_norm_train_backward::<Flex>(
                x, gamma, beta, mean, variance, epsilon, relu, grad,
            );
        };
        let (dx, dgamma, dbeta) = batch_norm::backward_train(
            s,
            &f32s(&x),
            &f32s(&gamma),
            &f32s(&beta),
            &f32s(&mean),
            &f32s(&variance),
            epsilon,
            relu,
            &f32s(&grad),
        );
        (like(dx, &x), vector(dgamma), vector(dbeta))
    }

    fn cnnzoo_batch_norm_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let Some(s) = norm_shape(&[&x, &gamma, &beta, &mean, &variance]) else {
            return burn_batch_norm_eval::<Flex>(x, gamma, beta, mean, variance, epsilon, relu);
        };
        let y = batch_norm::forward_eval(
            s,
            &f32s(&x),
            &f32s(&gamma),
            &f32s(&beta),
            &f32s(&mean),
            &f32s(&variance),
            epsilon,
            relu,
        );
        like(y, &x)
    }

    fn cnnzoo_add_relu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        if !same_f32_shape(&[&a, &b]) {
            return burn_add_relu::<Flex>(a, b);
        }
        like(residual::add_relu(&f32s(&a), &f32s(&b)), &a)
    }

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

    fn cnnzoo_relu_backward(y: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if !same_f32_shape(&[&y, &grad]) {
            return burn_relu_backward::<Flex>(y, grad);
        }
        like(residual::relu_backward(&f32s(&y), &f32s(&grad)), &y)
    }

    fn cnnzoo_scale_add_relu(a: FlexTensor, gates: FlexTensor, b: FlexTensor) -> FlexTensor {
        let Some(plane) = gate_plane(&a, &gates, &b) else {
            return burn_scale_add_relu::<Flex>(a, gates, b);
        };
        let y = residual::scale_add_relu(&f32s(&a), &f32s(&gates), &f32s(&b), plane);
        like(y, &a)
    }

    fn cnnzoo_scale_add_relu_backward(
        a: FlexTensor,
        gates: FlexTensor,
        y: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let plane = gate_plane(&a, &gates, &y).filter(|_| same_f32_shape(&[&y, &grad]));
        let Some(plane) = plane else {
            return burn_scale_add_relu_backward::<Flex>(a, gates, y, grad);
        };
        let (da, dgates, db) = residual::scale_add_relu_backward(
            &f32s(&a),
            &f32s(&gates),
            &f32s(&y),
            &f32s(&grad),
            plane,
        );
        (like(da, &a), like(dgates, &gates), like(db, &a))
    }

    fn cnnzoo_se_excite(
        a: FlexTensor,
        w1: FlexTensor,
        b1: FlexTensor,
        w2: FlexTensor,
        b2: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(shape) = se_shape(&a, &w1, &b1, &w2, &b2) else {
            return burn_se_excite::<Flex>(a, w1, b1, w2, b2);
        };
        let e = squeeze_excite::excite(
            &f32s(&a),
            &f32s(&w1),
            &f32s(&b1),
            &f32s(&w2),
            &f32s(&b2),
            shape,
        );
        let (n, c, r) = (shape.batch, shape.channels, shape.reduced);
        (
            FlexTensor::from_data(TensorData::new(e.squeezed, [n, c])),
            FlexTensor::from_data(TensorData::new(e.hidden, [n, r])),
            FlexTensor::from_data(TensorData::new(e.gates, [n, c, 1, 1])),
        )
    }

    fn cnnzoo_se_backward(
        a: FlexTensor,
        w1: FlexTensor,
        w2: FlexTensor,
        squeezed: FlexTensor,
        hidden: FlexTensor,
        gates: FlexTensor,
        y: FlexTensor,
        grad: FlexTensor,
    ) -> SeGradTensors<Flex> {
        // Everything must be as `cnnzoo_se_excite` left it (else Burn's operations check it).
        let d = a.shape();
        let fits = same_f32_shape(&[&a, &y, &grad])
            && d.num_dims() == 4
            && w1.shape().num_dims() == 4
            && [&w1, &w2, &squeezed, &hidden, &gates]
                .iter()
                .all(|t| t.dtype() == DType::F32);
        let (n, c, r) = if fits {
            (d[0], d[1], w1.shape()[0])
        } else {
            (0, 0, 0)
        };
        let fits = fits
            && shaped(&w1, &[r, c, 1, 1])
            && shaped(&w2, &[c, r, 1, 1])
            && shaped(&squeezed, &[n, c])
            && shaped(&hidden, &[n, r])
            && shaped(&gates, &[n, c, 1, 1]);
        if !fits {
            return burn_se_backward::<Flex>(a, w1, w2, squeezed, hidden, gates, y, grad);
        }
        let shape = SeShape {
            batch: n,
            channels: c,
            reduced: r,
            plane: d[2] * d[3],
        };
        let e = squeeze_excite::Excitation {
            squeezed: f32s(&squeezed).into_owned(),
            hidden: f32s(&hidden).into_owned(),
            gates: f32s(&gates).into_owned(),
        };
        let g = squeeze_excite::backward(
            &f32s(&a),
            &f32s(&w1),
            &f32s(&w2),
            &e,
            &f32s(&y),
            &f32s(&grad),
            shape,
        );
        (
            like(g.a, &a),
            like(g.w1, &w1),
            vector(g.b1),
            like(g.w2, &w2),
            vector(g.b2),
            like(g.shortcut, &a),
        )
    }
}

/// The sizes of a fused SE block end when `a` is `[N, C, H, W]`, `w1` `[R, C, 1, 1]`, `b1`
/// `[R]`, `w2` `[C, R, 1, 1]`, `b2` `[C]`, all `f32`; `None` sends the call to Burn's
/// operations, which check the shapes and say what is wrong.
fn se_shape(
    a: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    w2: &FlexTensor,
    b2: &FlexTensor,
) -> Option<SeShape> {
    let tensors = [a, w1, b1, w2, b2];
    if tensors.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let (sa, s1) = (a.shape(), w1.shape());
    if sa.num_dims() != 4 || s1.num_dims() != 4 {
        return None;
    }
    let (n, c, r) = (sa[0], sa[1], s1[0]);
    let fits = shaped(w1, &[r, c, 1, 1])
        && shaped(b1, &[r])
        && shaped(w2, &[c, r, 1, 1])
        && shaped(b2, &[c]);
    fits.then_some(SeShape {
        batch: n,
        channels: c,
        reduced: r,
        plane: sa[2] * sa[3],
    })
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

/// Whether `bias` is an `f32` vector with one value per output channel of `weight` (checked to
/// be of rank 4 by [`fast_path`] first).
fn bias_fits(bias: &FlexTensor, weight: &FlexTensor) -> bool {
    bias.dtype() == DType::F32 && shaped(bias, &[weight.shape()[0]])
}

/// Whether `t` has exactly the dimensions `dims` (its rank included).
fn shaped(t: &FlexTensor, dims: &[usize]) -> bool {
    let s = t.shape();
    s.num_dims() == dims.len() && dims.iter().enumerate().all(|(i, d)| s[i] == *d)
}

/// Whether the tensors are `f32` and of one shape (else Burn's operations take the call and
/// broadcast or report the mismatch).
fn same_f32_shape(tensors: &[&FlexTensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape() == tensors[0].shape())
}

/// Elements per gate when `a` and `b` are `[N, C, H, W]` `f32` of one shape and `gates` is
/// `[N, C, 1, 1]`.
fn gate_plane(a: &FlexTensor, gates: &FlexTensor, b: &FlexTensor) -> Option<usize> {
    let (sa, sg) = (a.shape(), gates.shape());
    let fits = same_f32_shape(&[a, b])
        && gates.dtype() == DType::F32
        && sa.num_dims() == 4
        && sg.num_dims() == 4
        && sg[0] == sa[0]
        && sg[1] == sa[1]
        && sg[2] == 1
        && sg[3] == 1;
    fits.then(|| sa[2] * sa[3])
}

/// The BatchNorm layout of `tensors[0]` when every tensor is `f32` and the per-channel ones
/// match its channels; `None` sends the call to Burn's implementation.
fn norm_shape(tensors: &[&FlexTensor]) -> Option<NormShape> {
    if tensors.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let dims = tensors[0].shape();
    if dims.num_dims() < 2 {
        return None;
    }
    let (batch, channels) = (dims[0], dims[1]);
    let plane = dims.num_elements() / (batch * channels).max(1);
    for t in &tensors[1..] {
        let d = t.shape();
        let per_channel = d.num_dims() == 1 && d[0] == channels;
        if !(per_channel || d == dims) {
            return None;
        }
    }
    Some(NormShape {
        batch,
        channels,
        plane,
    })
}

/// A tensor with `values` and `like`'s shape.
fn like(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

/// A rank-1 tensor.
fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, [n]))
}

/// The backward step of [`ConvKernels::cnnzoo_conv2d`] under autodiff.
#[derive(Debug)]
struct Conv2dBackward;

impl<B: Backend + ConvKernels> Backward<B, 2> for Conv2dBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::cnnzoo_conv2d_x_backward(
                x.clone(),
                weight.clone(),
                grad.clone(),
                options.clone(),
            );
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let dw = B::cnnzoo_conv2d_weight_backward(x, weight, grad, options);
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B: Backend + ConvKernels, C: CheckpointStrategy> ConvKernels for Autodiff<B, C> {
    fn cnnzoo_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match Conv2dBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y =
                    B::cnnzoo_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn cnnzoo_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prepared = BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (y, mean, var);
        let output = match prepared {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                (y, mean, var) = B::cnnzoo_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                let state = (
                    x_state,
                    gamma_state,
                    beta_state,
                    mean.clone(),
                    var.clone(),
                    epsilon,
                    relu,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                (y, mean, var) = B::cnnzoo_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                prep.finish(y)
            }
        };
        (output, Self::from_inner(mean), Self::from_inner(var))
    }

    fn cnnzoo_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match AddReluBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::cnnzoo_add_relu(a.into_primitive(), b.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cnnzoo_add_relu(a.into_primitive(), b.into_primitive()))
            }
        }
    }

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

    fn cnnzoo_scale_add_relu(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ScaleAddReluBackward
            .prepare::<C>([a.node(), gates.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let a_state = prep.checkpoint(&a);
                let gates_state = prep.checkpoint(&gates);
                let y = B::cnnzoo_scale_add_relu(
                    a.into_primitive(),
                    gates.into_primitive(),
                    b.into_primitive(),
                );
                prep.finish((a_state, gates_state, y.clone()), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_scale_add_relu(
                a.into_primitive(),
                gates.into_primitive(),
                b.into_primitive(),
            )),
        }
    }

    fn cnnzoo_se_scale_add_relu(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [&a, &w1, &b1, &w2, &b2, &shortcut].map(|t| t.node());
        match SeScaleAddReluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let a_state = prep.checkpoint(&a);
                let w1_state = prep.checkpoint(&w1);
                let w2_state = prep.checkpoint(&w2);
                let a = a.into_primitive();
                let (squeezed, hidden, gates) = B::cnnzoo_se_excite(
                    a.clone(),
                    w1.into_primitive(),
                    b1.into_primitive(),
                    w2.into_primitive(),
                    b2.into_primitive(),
                );
                let y = B::cnnzoo_scale_add_relu(a, gates.clone(), shortcut.into_primitive());
                let state = (
                    a_state,
                    w1_state,
                    w2_state,
                    squeezed,
                    hidden,
                    gates,
                    y.clone(),
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_se_scale_add_relu(
                a.into_primitive(),
                w1.into_primitive(),
                b1.into_primitive(),
                w2.into_primitive(),
                b2.into_primitive(),
                shortcut.into_primitive(),
            )),
        }
    }
}

/// The backward step of [`ConvKernels::cnnzoo_se_scale_add_relu`] under autodiff: the branch,
/// both FC weights (checkpointed), what the excitation computed, and the output.
#[derive(Debug)]
struct SeScaleAddReluBackward;

impl<B: Backend + ConvKernels> Backward<B, 6> for SeScaleAddReluBackward {
    #[allow(clippy::type_complexity)]
    type State = (
        NodeId,
        NodeId,
        NodeId,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 6>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (a_state, w1_state, w2_state, squeezed, hidden, gates, y) = ops.state;
        let a = checkpointer.retrieve_node_output::<FloatTensor<B>>(a_state);
        let w1 = checkpointer.retrieve_node_output::<FloatTensor<B>>(w1_state);
        let w2 = checkpointer.retrieve_node_output::<FloatTensor<B>>(w2_state);
        let (da, dw1, db1, dw2, db2, ds) =
            B::cnnzoo_se_backward(a, w1, w2, squeezed, hidden, gates, y, grad);
        for (node, g) in ops.parents.into_iter().zip([da, dw1, db1, dw2, db2, ds]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// The backward step of [`ConvKernels::cnnzoo_add_relu`] under autodiff: both operands get the
/// output gradient masked by the output's sign.
#[derive(Debug)]
struct AddReluBackward;

impl<B: Backend + ConvKernels> Backward<B, 2> for AddReluBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let masked = B::cnnzoo_relu_backward(ops.state, grad);
        if let Some(node) = node_a {
            grads.register::<B>(node.id, masked.clone());
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, masked);
        }
    }
}

/// The backward step of [`ConvKernels::cnnzoo_zero_pad_shortcut`] under autodiff; its state
/// is the input's shape and the stride.
#[derive(Debug)]
struct ZeroPadShortcutBackward;

impl<B: Backend + ConvKernels> Backward<B, 1> for ZeroPadShortcutBackward {
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

/// The backward step of [`ConvKernels::cnnzoo_scale_add_relu`] under autodiff.
#[derive(Debug)]
struct ScaleAddReluBackward;

impl<B: Backend + ConvKernels> Backward<B, 3> for ScaleAddReluBackward {
    type State = (NodeId, NodeId, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_gates, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a_state, gates_state, y) = ops.state;
        let a = checkpointer.retrieve_node_output::<FloatTensor<B>>(a_state);
        let gates = checkpointer.retrieve_node_output::<FloatTensor<B>>(gates_state);
        let (da, dgates, db) = B::cnnzoo_scale_add_relu_backward(a, gates, y, grad);
        for (node, g) in [(node_a, da), (node_gates, dgates), (node_b, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// The backward step of [`ConvKernels::cnnzoo_batch_norm_train`] under autodiff.
#[derive(Debug)]
struct BatchNormBackward;

impl<B: Backend + ConvKernels> Backward<B, 3> for BatchNormBackward {
    // The input, gamma and beta are checkpointed (beta locates the ReLU's mask); the batch
    // statistics come along as computed.
    type State = (
        NodeId,
        NodeId,
        NodeId,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
        bool,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, beta_state, mean, variance, epsilon, relu) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
        let beta = checkpointer.retrieve_node_output::<FloatTensor<B>>(beta_state);
        let (dx, dgamma, dbeta) = B::cnnzoo_batch_norm_train_backward(
            x, gamma, beta, mean, variance, epsilon, relu, grad,
        );
        for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// Whether `device` runs inference only: a Flex device without autodiff. `Device`'s equality
/// ignores autodiff, so `device == Device::flex()` alone also holds for training's device,
/// whose autodiff versions of the inference-only operations are Burn's (slow) defaults.
fn inference_device(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// Whether tensors on `device` run cnnzoo's kernels: Flex devices, with or without autodiff.
pub fn uses_kernels(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// How much of BatchNorm on LibTorch devices runs PyTorch's kernels.
#[cfg(feature = "tch")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchBatchNorm {
    /// Burn's composition forward and backward (`CNNZOO_TORCH_BN=burn`).
    Burn,
    /// PyTorch's forward and evaluation, Burn's backward (the default).
    Forward,
    /// PyTorch's forward, evaluation and (on CUDA) backward (`CNNZOO_TORCH_BN=native`).
    Native,
}

/// The BatchNorm mode from `CNNZOO_TORCH_BN` (read once).
#[cfg(feature = "tch")]
pub fn batch_norm_mode() -> TorchBatchNorm {
    static MODE: std::sync::OnceLock<TorchBatchNorm> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("CNNZOO_TORCH_BN").as_deref() {
        Ok("burn") => TorchBatchNorm::Burn,
        Ok("native") => TorchBatchNorm::Native,
        _ => TorchBatchNorm::Forward,
    })
}

/// Whether BatchNorm on `device` goes through [`ConvKernels`]: cnnzoo's kernels on Flex, and
/// PyTorch's own BatchNorm on LibTorch devices (feature `tch`, see torch.rs).
fn batch_norm_extension(device: &Device) -> bool {
    uses_kernels(device) || torch_batch_norm(device)
}

#[cfg(feature = "tch")]
fn torch_batch_norm(device: &Device) -> bool {
    batch_norm_mode() != TorchBatchNorm::Burn
        && matches!(
            device.clone().without_autodiff().as_dispatch(),
            burn::backend::DispatchDevice::LibTorch(_)
        )
}

#[cfg(not(feature = "tch"))]
fn torch_batch_norm(_device: &Device) -> bool {
    false
}

/// Whether `x` has rank 2 or more and every vector holds one value per channel of `x`; when
/// not, the call goes to Burn's operation, which checks its arguments and says what is wrong.
fn per_channel<const D: usize>(x: &Tensor<D>, vectors: &[&Tensor<1>]) -> bool {
    D >= 2 && vectors.iter().all(|v| v.dims() == [x.dims()[1]])
}

/// BatchNorm with the batch's statistics, as `burn::tensor::module::batch_norm_train`,
/// followed by ReLU in the same pass when `relu`: returns the output, the batch mean and the
/// biased batch variance.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    if !batch_norm_extension(&x.device()) || !per_channel(&x, &[&gamma, &beta]) {
        let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        let output = if relu {
            burn::tensor::activation::relu(r.output)
        } else {
            r.output
        };
        return (output, r.mean, r.variance);
    }
    let (y, mean, var) = <Dispatch as ConvKernels>::cnnzoo_batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        relu,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

/// BatchNorm with given statistics, as `burn::tensor::module::batch_norm`, followed by ReLU
/// in the same pass when `relu`.
pub fn batch_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> Tensor<D> {
    if !batch_norm_extension(&x.device()) || !per_channel(&x, &[&gamma, &beta, &mean, &variance]) {
        let y = burn::tensor::module::batch_norm(x, gamma, beta, mean, variance, epsilon);
        return if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
    }
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_batch_norm_eval(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        variance.into_dispatch(),
        epsilon,
        relu,
    ))
}

/// Whether the weight's input channels and groups fit `x` and the bias has one value per
/// output channel.
fn conv_shapes_agree(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
) -> bool {
    let [_, channels, _, _] = x.dims();
    let [out, per_group, _, _] = weight.dims();
    per_group * options.groups == channels
        && out.is_multiple_of(options.groups)
        && bias.is_none_or(|b| b.dims() == [out])
}

/// 2-D convolution: cnnzoo's kernels on the CPU (Flex), Burn's `conv2d` on other backends
/// (in the [`autocast`](crate::precision::autocast) precision). Same arguments and result as
/// `burn::tensor::module::conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !uses_kernels(&x.device()) {
        return crate::precision::conv2d_in(crate::precision::autocast(), x, weight, bias, options);
    }
    // Inconsistent shapes go to Burn's conv2d too: it checks them and says what is wrong
    // (the backend operations underneath do not).
    if !conv_shapes_agree(&x, &weight, bias.as_ref(), &options) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let inference = inference_device(&x.device());
    if let Some(b) = &bias
        && inference
    {
        // Inference (no autodiff): the bias is added in the same parallel pass.
        return Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_conv2d_bias(
            x.into_dispatch(),
            weight.into_dispatch(),
            b.clone().into_dispatch(),
            options,
            false,
        ));
    }
    // Inference (no autodiff): the weights may be kept transformed between calls.
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    let y = Tensor::<4>::from_dispatch(if inference {
        <Dispatch as ConvKernels>::cnnzoo_conv2d_inference(x, weight, options)
    } else {
        <Dispatch as ConvKernels>::cnnzoo_conv2d(x, weight, options)
    });
    match bias {
        Some(b) => {
            let channels = b.dims()[0];
            y + b.reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

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
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_max_pool2d(
        x.into_dispatch(),
        options.kernel_size,
        options.stride,
        options.padding.map(|(a, _)| a),
        options.ceil_mode,
    ))
}

/// `relu(a + b)`, the end of a residual block, in one pass on the CPU (Flex) with its own
/// backward; Burn's `relu(a + b)` elsewhere or when the shapes differ (Burn broadcasts them).
pub fn add_relu(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if !uses_kernels(&a.device()) || a.dims() != b.dims() {
        return burn::tensor::activation::relu(a + b);
    }
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_add_relu(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
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
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_zero_pad_shortcut(
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

/// `relu(a * gates + b)` with `gates` `[N, C, 1, 1]`: the end of a residual block with a
/// standard SE unit (the channel-wise axpy, then the ReLU), in one pass on the CPU (Flex) with
/// its own backward; Burn's operations elsewhere or for other shapes.
pub fn scale_add_relu(a: Tensor<4>, gates: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [n, c, _, _] = a.dims();
    if !uses_kernels(&a.device()) || a.dims() != b.dims() || gates.dims() != [n, c, 1, 1] {
        return burn::tensor::activation::relu(a * gates + b);
    }
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_scale_add_relu(
        a.into_dispatch(),
        gates.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// The end of a residual block with a standard SE unit, squeeze and excitation included:
/// `relu(a * sigmoid(fc2(relu(fc1(mean(a))))) + shortcut)`, with fc1 `w1` `[R, C, 1, 1]`,
/// `b1` `[R]` and fc2 `w2` `[C, R, 1, 1]`, `b2` `[C]` (1x1 convolutions on the channel
/// means). On the CPU (Flex) it is one operation with its own backward (two passes over the
/// branch each way); Burn's operations elsewhere or for other shapes.
pub fn se_scale_add_relu(
    a: Tensor<4>,
    w1: Tensor<4>,
    b1: Tensor<1>,
    w2: Tensor<4>,
    b2: Tensor<1>,
    shortcut: Tensor<4>,
) -> Tensor<4> {
    let [_, c, _, _] = a.dims();
    let [r, ..] = w1.dims();
    let fits = uses_kernels(&a.device())
        && a.dims() == shortcut.dims()
        && w1.dims() == [r, c, 1, 1]
        && b1.dims() == [r]
        && w2.dims() == [c, r, 1, 1]
        && b2.dims() == [c];
    if !fits {
        let squeezed = a.clone().mean_dim(3).mean_dim(2);
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let hidden = burn::tensor::activation::relu(burn::tensor::module::conv2d(
            squeezed,
            w1,
            Some(b1),
            options.clone(),
        ));
        let gates = burn::tensor::activation::sigmoid(burn::tensor::module::conv2d(
            hidden,
            w2,
            Some(b2),
            options,
        ));
        return burn::tensor::activation::relu(a * gates + shortcut);
    }
    Tensor::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_se_scale_add_relu(
        a.into_dispatch(),
        w1.into_dispatch(),
        b1.into_dispatch(),
        w2.into_dispatch(),
        b2.into_dispatch(),
        shortcut.into_dispatch(),
    ))
}

/// `relu(conv2d(x, weight, bias, options))`; on the CPU without autodiff (inference, e.g. a
/// network with BatchNorm folded into its convolutions) the bias and the ReLU are applied in
/// the convolution's own parallel pass.
pub fn conv2d_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    conv2d_then_relu(x, weight, bias, None, options)
}

/// `relu(conv2d(x, weight, bias, options) + residual)`: the last convolution of a residual
/// branch (BatchNorm folded into its bias) with the block's addition and ReLU. On the CPU
/// without autodiff (inference) the addition and the ReLU happen as the convolution writes its
/// output; elsewhere, or for shapes that do not fit, Burn's operations.
pub fn conv2d_add_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    residual: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    conv2d_then_relu(x, weight, bias, Some(residual), options)
}

/// [`conv2d_relu`], with `residual` added before the ReLU when given.
fn conv2d_then_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    residual: Option<Tensor<4>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    // Inference on the CPU with a bias: the kernels' epilogue; anything else: Burn's ops.
    let fast =
        conv_shapes_agree(&x, &weight, bias.as_ref(), &options) && inference_device(&x.device());
    let b = match bias {
        Some(b) if fast => b,
        bias => {
            let y = conv2d(x, weight, bias, options);
            return burn::tensor::activation::relu(match residual {
                Some(r) => y + r,
                None => y,
            });
        }
    };
    let (x, weight, b) = (x.into_dispatch(), weight.into_dispatch(), b.into_dispatch());
    Tensor::from_dispatch(match residual {
        None => <Dispatch as ConvKernels>::cnnzoo_conv2d_bias(x, weight, b, options, true),
        Some(r) => <Dispatch as ConvKernels>::cnnzoo_conv2d_bias_add_relu(
            x,
            weight,
            b,
            r.into_dispatch(),
            options,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], seed: u32, shift: f32) -> FlexTensor {
        let n: usize = shape.iter().product();
        let values = (0..n as u32)
            .map(|i| {
                let h = (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 8) as f32;
                h / (1u32 << 24) as f32 * 2.0 - 1.0 + shift
            })
            .collect();
        FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
    }

    fn close(what: &str, a: &FlexTensor, b: &FlexTensor) {
        assert_eq!(a.shape(), b.shape(), "{what}: shape");
        let worst = f32s(a)
            .iter()
            .zip(f32s(b).iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{what}: max difference {worst}");
    }

    /// The SE defaults (Burn's operations, what a GPU backend runs) against the Flex kernels.
    #[test]
    fn se_defaults_match_the_kernels() {
        let (n, c, r, h, w) = (3, 16, 4, 5, 3);
        let a = tensor(&[n, c, h, w], 1, 0.2);
        let (w1, b1) = (tensor(&[r, c, 1, 1], 2, 0.0), tensor(&[r], 3, 0.0));
        let (w2, b2) = (tensor(&[c, r, 1, 1], 4, 0.0), tensor(&[c], 5, 0.0));
        let shortcut = tensor(&[n, c, h, w], 6, 0.0);
        let grad = tensor(&[n, c, h, w], 7, 0.0);
        let ours =
            Flex::cnnzoo_se_excite(a.clone(), w1.clone(), b1.clone(), w2.clone(), b2.clone());
        let burn = burn_se_excite::<Flex>(a.clone(), w1.clone(), b1, w2.clone(), b2);
        close("squeezed", &ours.0, &burn.0);
        close("hidden", &ours.1, &burn.1);
        close("gates", &ours.2, &burn.2);
        assert!(
            f32s(&ours.1).contains(&0.0),
            "the bottleneck's ReLU never clipped"
        );
        let y = Flex::cnnzoo_scale_add_relu(a.clone(), ours.2.clone(), shortcut);
        let (sq, hid, g) = ours;
        let k = Flex::cnnzoo_se_backward(
            a.clone(),
            w1.clone(),
            w2.clone(),
            sq.clone(),
            hid.clone(),
            g.clone(),
            y.clone(),
            grad.clone(),
        );
        let d = burn_se_backward::<Flex>(a, w1, w2, sq, hid, g, y, grad);
        close("dL/da", &k.0, &d.0);
        close("dL/dw1", &k.1, &d.1);
        close("dL/db1", &k.2, &d.2);
        close("dL/dw2", &k.3, &d.3);
        close("dL/db2", &k.4, &d.4);
        close("dL/dshortcut", &k.5, &d.5);
    }

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

    /// FC weights given as `[R, C]` / `[C, R]` matrices instead of 1x1 kernels: the Flex
    /// operations hand them to Burn's operations (which take them as they are) instead of
    /// reading past their shape.
    #[test]
    fn se_operations_take_other_ranks_through_burn() {
        let (n, c, r, h, w) = (2, 8, 4, 3, 3);
        let a = tensor(&[n, c, h, w], 11, 0.2);
        let (w1, b1) = (tensor(&[r, c, 1, 1], 12, 0.0), tensor(&[r], 13, 0.0));
        let (w2, b2) = (tensor(&[c, r, 1, 1], 14, 0.0), tensor(&[c], 15, 0.0));
        let as_matrix = |t: &FlexTensor| {
            let d = t.shape();
            FlexTensor::from_data(TensorData::new(f32s(t).into_owned(), [d[0], d[1]]))
        };
        let (m1, m2) = (as_matrix(&w1), as_matrix(&w2));
        let e = Flex::cnnzoo_se_excite(a.clone(), w1.clone(), b1.clone(), w2.clone(), b2.clone());
        let m = Flex::cnnzoo_se_excite(a.clone(), m1.clone(), b1, m2.clone(), b2);
        close("gates", &e.2, &m.2);
        let y = Flex::cnnzoo_scale_add_relu(a.clone(), e.2.clone(), tensor(&[n, c, h, w], 16, 0.5));
        let grad = tensor(&[n, c, h, w], 17, 0.0);
        let (sq, hid, g) = e;
        let k = Flex::cnnzoo_se_backward(
            a.clone(),
            w1,
            w2,
            sq.clone(),
            hid.clone(),
            g.clone(),
            y.clone(),
            grad.clone(),
        );
        let b = Flex::cnnzoo_se_backward(a, m1, m2, sq, hid, g, y, grad);
        close("dL/da", &k.0, &b.0);
        close("dL/dw1", &as_matrix(&k.1), &b.1);
        close("dL/db2", &k.4, &b.4);
    }
}
