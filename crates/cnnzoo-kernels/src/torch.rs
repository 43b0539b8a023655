//! BatchNorm on Burn's LibTorch backend through PyTorch's own kernels (feature `tch`).
//!
//! Burn 0.22's LibTorch backend has no BatchNorm of its own: Burn composes it from a dozen
//! element-wise operations and reductions forward and more backward, each a full pass over the
//! activations. Here the forward is `native_batch_norm` (one statistics pass and one
//! normalisation pass, cuDNN's where it applies) and, on CUDA, the backward is the pair of
//! kernels PyTorch's own autograd and `SyncBatchNorm` use (`batch_norm_backward_reduce`, then
//! `batch_norm_backward_elemt`).
//!
//! `CNNZOO_TORCH_BN` chooses: `forward` (the default) runs PyTorch's forward and evaluation
//! with Burn's composed backward; `native` adds PyTorch's backward pair, which has not yet run
//! to a checked training result on a GPU (see results/gpu.md) and so is opt-in; `burn` is
//! Burn's composition throughout.

// Burn 0.22 deprecates its LibTorch backend in favour of CubeCL's, but it is the cuDNN route.
#![allow(deprecated)]

use burn::backend::tensor::FloatTensor;
use burn::backend::{BackendTypes, LibTorch};
use tch::{Kind, Tensor as Torch};

use crate::ops::batch_norm::{BatchNormOps, TorchBatchNorm, batch_norm_mode};

/// LibTorch's float tensor (`burn_tch::TchTensor`).
type TchFloat = <LibTorch as BackendTypes>::FloatTensorPrimitive;

fn wrap(t: Torch) -> FloatTensor<LibTorch> {
    TchFloat::new(t)
}

/// `1 / sqrt(variance + epsilon)`, PyTorch's saved statistic.
fn inverse_std(variance: &Torch, epsilon: f64) -> Torch {
    (variance + epsilon).rsqrt()
}

impl BatchNormOps for LibTorch {
    fn cnnzoo_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, invstd) = x.tensor.native_batch_norm(
            Some(&gamma.tensor),
            Some(&beta.tensor),
            None::<&Torch>,
            None::<&Torch>,
            true,
            0.0,
            epsilon,
        );
        let y = if relu { y.relu() } else { y };
        // The biased variance, as Burn's `batch_norm_train` returns it (a constant channel's
        // comes back as about 0, and rounding must not make it negative).
        let variance = (invstd.pow_tensor_scalar(-2.0) - epsilon).clamp_min(0.0);
        (wrap(y), wrap(mean), wrap(variance))
    }

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
        if batch_norm_mode() != TorchBatchNorm::Native || !on_cuda_f32(&x.tensor) {
            // PyTorch's backward pair is CUDA-only and opt-in: Burn's composition otherwise.
            return crate::ops::batch_norm::burn_batch_norm_train_backward::<Self>(
                x, gamma, beta, mean, variance, epsilon, relu, grad,
            );
        }
        let (xt, gt) = (&x.tensor, &gamma.tensor);
        let invstd = inverse_std(&variance.tensor, epsilon);
        let grad = if relu {
            // The ReLU's mask from the recomputed pre-activation.
            let pre =
                xt.batch_norm_elemt(Some(gt), Some(&beta.tensor), &mean.tensor, &invstd, epsilon);
            // tch's receiver is the forward input, its argument the incoming gradient.
            pre.threshold_backward(&grad.tensor, 0.0)
        } else {
            grad.tensor
        };
        let (sum_dy, sum_dy_xmu, dgamma, dbeta) =
            xt.batch_norm_backward_reduce(&grad, &mean.tensor, &invstd, Some(gt), true, true, true);
        let size = xt.size();
        let count = size[0] * size[2..].iter().product::<i64>();
        let count = Torch::from_slice(&[count as i32]).to_device(xt.device());
        let dx = xt.batch_norm_backward_elemt(
            &grad,
            &mean.tensor,
            &invstd,
            Some(gt),
            &sum_dy,
            &sum_dy_xmu,
            &count,
        );
        (wrap(dx), wrap(dgamma), wrap(dbeta))
    }

    fn cnnzoo_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        let y = x.tensor.batch_norm(
            Some(&gamma.tensor),
            Some(&beta.tensor),
            Some(&mean.tensor),
            Some(&variance.tensor),
            false,
            0.0,
            epsilon,
            true,
        );
        wrap(if relu { y.relu() } else { y })
    }
}

/// Whether `x` is a float32 tensor on a CUDA device (the backward kernels are CUDA's).
pub(crate) fn on_cuda_f32(x: &Torch) -> bool {
    x.device().is_cuda() && x.kind() == Kind::Float
}
