//! BatchNorm as a Burn operation, training ([`batch_norm_train`], the batch's statistics) and
//! evaluation ([`batch_norm()`], given statistics), each with the following ReLU in the same
//! pass. On Flex the kernels of [`crate::batch_norm`]; on LibTorch devices PyTorch's own
//! BatchNorm (feature `tch`, see `crate::torch`); elsewhere Burn's composition.

// The `tch` feature names Burn's LibTorch backend, which Burn 0.22 deprecates (see torch.rs).
#![cfg_attr(feature = "tch", allow(deprecated))]

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Device, Tensor};

use super::device::uses_kernels;
use super::flex::{f32s, like, vector};
use crate::batch_norm::{self, NormShape};

/// BatchNorm with the following ReLU: cnnzoo's kernels on Flex, PyTorch's on LibTorch, Burn's
/// composition elsewhere.
#[backend_extension(Flex, Autodiff, LibTorch: cfg(feature = "tch"))]
pub trait BatchNormOps: Backend {
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
}

/// [`BatchNormOps::cnnzoo_batch_norm_train`] from Burn's operations.
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

/// [`BatchNormOps::cnnzoo_batch_norm_train_backward`] from Burn's operations.
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

/// [`BatchNormOps::cnnzoo_batch_norm_eval`] from Burn's operations.
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

impl BatchNormOps for Flex {
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
}

impl<B: Backend + BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
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
}

/// The backward step of [`BatchNormOps::cnnzoo_batch_norm_train`] under autodiff.
#[derive(Debug)]
struct BatchNormBackward;

impl<B: Backend + BatchNormOps> Backward<B, 3> for BatchNormBackward {
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

/// Whether BatchNorm on `device` goes through [`BatchNormOps`]: cnnzoo's kernels on Flex, and
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
    let (y, mean, var) = <Dispatch as BatchNormOps>::cnnzoo_batch_norm_train(
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
    Tensor::from_dispatch(<Dispatch as BatchNormOps>::cnnzoo_batch_norm_eval(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        variance.into_dispatch(),
        epsilon,
        relu,
    ))
}
