//! The kernels as a Burn backend extension: an operation with a forward on Flex (Burn's CPU
//! backend) and its own backward under Autodiff.
//!
//! [`conv2d`] is what the networks call. On a Flex device (with or without autodiff) it runs
//! [`ConvKernels::cnnzoo_conv2d`]; on any other backend it is Burn's own `conv2d`, so a GPU
//! build keeps its fused, autotuned kernels. The choice is made here from the tensor's device,
//! never in the model code.

use std::borrow::Cow;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::conv::{self, ConvGeometry};

/// Convolution with cnnzoo's kernels where the backend has them, Burn's elsewhere.
#[backend_extension(Flex, Autodiff)]
pub trait ConvKernels: Backend {
    /// 2-D convolution without bias (`x` `[N, C, H, W]`, `weight` `[O, C/g, kh, kw]`).
    fn cnnzoo_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
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

/// The tensor's elements as a contiguous `f32` slice (borrowed when already so).
fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32 tensor").to_vec()),
    }
}

fn flex_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether the fast path applies: `f32` tensors of rank 4 with a geometry the kernels accept.
fn fast_path(tensors: &[&FlexTensor], options: &ConvOptions<2>) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape().num_dims() == 4)
        && geometry(tensors[0], tensors[1], options).validate().is_ok()
}

impl ConvKernels for Flex {
    fn cnnzoo_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if !fast_path(&[&x, &weight], &options) {
            return Flex::conv2d(x, weight, None, options);
        }
        let g = geometry(&x, &weight, &options);
        let [oh, ow] = g.out_size().expect("validated");
        let y = conv::conv2d_forward(&g, &f32s(&x), &f32s(&weight), None);
        flex_tensor(y, [g.batch, g.out_channels, oh, ow])
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
                let y = B::cnnzoo_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
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

/// Whether tensors on `device` run on Flex, where cnnzoo's kernels exist.
fn on_flex(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// 2-D convolution: cnnzoo's kernels on the CPU (Flex), Burn's `conv2d` on other backends.
/// Same arguments and result as `burn::tensor::module::conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !on_flex(&x.device()) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let y = Tensor::<4>::from_dispatch(<Dispatch as ConvKernels>::cnnzoo_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(b) => {
            let channels = b.dims()[0];
            y + b.reshape([1, channels, 1, 1])
        }
        None => y,
    }
}
