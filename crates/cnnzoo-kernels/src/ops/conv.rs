//! 2-D convolution as a Burn operation: [`conv2d`] (training and inference), and for
//! inference [`conv2d_relu`] and [`conv2d_add_relu`], whose bias, residual and ReLU are applied
//! as the kernels write their output. On Flex the kernels of [`crate::conv`]; on any other
//! backend Burn's own `conv2d`, so a GPU build keeps its fused, autotuned kernels (in the
//! [`autocast`](crate::precision::autocast) precision). The choice is made here from the
//! tensor's device, never in the model code.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};

use super::device::{inference_device, uses_kernels};
use super::flex::{f32s, flex_tensor, shaped};
use crate::geometry::{ConvGeometry, Epilogue};
use crate::{conv, weight_cache, winograd};

/// Convolution forward and backward: cnnzoo's kernels on Flex, Burn's `conv2d` elsewhere.
#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
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

/// Whether `bias` is an `f32` vector with one value per output channel of `weight` (checked to
/// be of rank 4 by [`fast_path`] first).
fn bias_fits(bias: &FlexTensor, weight: &FlexTensor) -> bool {
    bias.dtype() == DType::F32 && shaped(bias, &[weight.shape()[0]])
}

/// The forward convolution of an inference-only operation (its weights do not change from call
/// to call): Winograd from transformed weights kept between calls where
/// [`winograd::applies_transformed`] holds and the cache has room, else
/// [`conv::conv2d_forward_with`].
fn inference_forward(
    g: &ConvGeometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    epilogue: Epilogue,
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

impl ConvOps for Flex {
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
        let y = inference_forward(&g, &x, &weight, Epilogue::default());
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
        let epilogue = Epilogue {
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
            return Flex::relu(Flex::float_add(y, residual));
        };
        let (bias, residual) = (f32s(&bias), f32s(&residual));
        let epilogue = Epilogue {
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
}

/// The backward step of [`ConvOps::cnnzoo_conv2d`] under autodiff.
#[derive(Debug)]
struct Conv2dBackward;

impl<B: Backend + ConvOps> Backward<B, 2> for Conv2dBackward {
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

impl<B: Backend + ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
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
        return Tensor::from_dispatch(<Dispatch as ConvOps>::cnnzoo_conv2d_bias(
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
        <Dispatch as ConvOps>::cnnzoo_conv2d_inference(x, weight, options)
    } else {
        <Dispatch as ConvOps>::cnnzoo_conv2d(x, weight, options)
    });
    match bias {
        Some(b) => {
            let channels = b.dims()[0];
            y + b.reshape([1, channels, 1, 1])
        }
        None => y,
    }
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
        None => <Dispatch as ConvOps>::cnnzoo_conv2d_bias(x, weight, b, options, true),
        Some(r) => <Dispatch as ConvOps>::cnnzoo_conv2d_bias_add_relu(
            x,
            weight,
            b,
            r.into_dispatch(),
            options,
        ),
    })
}
