//! Applying Burn's `Conv2d` and `BatchNorm` modules through cnnzoo's kernels.
//!
//! Burn's modules keep the parameters and running statistics (and so the weight files' layout);
//! the arithmetic goes through [`cnnzoo_kernels`], which runs cnnzoo's CPU kernels on Flex and
//! Burn's own operations on every other backend.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

use crate::blocks::activation::Activation;

/// `conv.forward(x)`, computed by [`cnnzoo_kernels::conv2d`].
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = conv_options(conv, &x);
    cnnzoo_kernels::conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(burn::module::Param::val),
        options,
    )
}

/// `act(conv.forward(x))`; a ReLU after a biased convolution (a network with BatchNorm folded
/// in) is applied in the convolution's own pass at inference.
pub fn conv_act(conv: &Conv2d, x: Tensor<4>, act: Option<Activation>) -> Tensor<4> {
    match act {
        Some(Activation::Relu) => {
            let options = conv_options(conv, &x);
            cnnzoo_kernels::conv2d_relu(
                x,
                conv.weight.val(),
                conv.bias.as_ref().map(burn::module::Param::val),
                options,
            )
        }
        Some(act) => act.apply(conv2d(conv, x)),
        None => conv2d(conv, x),
    }
}

/// `relu(conv.forward(x) + residual)`: the last convolution of a residual branch (BatchNorm
/// folded into it) with the block's addition and ReLU, applied as the convolution writes its
/// output at inference.
pub fn conv_add_relu(conv: &Conv2d, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
    let options = conv_options(conv, &x);
    cnnzoo_kernels::conv2d_add_relu(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(burn::module::Param::val),
        residual,
        options,
    )
}

/// The convolution options of `conv` applied to `x` (its `Same` padding depends on `x`'s size).
fn conv_options(conv: &Conv2d, x: &Tensor<4>) -> ConvOptions<2> {
    let [_, _, height, width] = x.dims();
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => [
            same_padding(conv.kernel_size[0], conv.stride[0], height),
            same_padding(conv.kernel_size[1], conv.stride[1], width),
        ],
    };
    ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups)
}

/// `(begin, end)` padding that gives `ceil(size / stride)` outputs, as Burn's `Same` computes
/// it (its helper, `PaddingConfig2d::calculate_padding_2d_pairs`, is `pub(crate)` in burn-nn
/// 0.22.1).
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// `act(bn.forward(x))` with either part optional, the BatchNorm computed by cnnzoo's kernels:
/// batch statistics (and a running-statistics update) when the layer trains on an autodiff
/// device, the running statistics otherwise, exactly as Burn's `BatchNorm::forward` decides.
/// BatchNorm + ReLU is one fused pass, forward and backward.
pub fn norm_act<const D: usize>(
    bn: Option<&BatchNorm>,
    x: Tensor<D>,
    act: Option<Activation>,
) -> Tensor<D> {
    let (x, act) = match (bn, act) {
        (Some(bn), Some(Activation::Relu)) => (normalise(bn, x, true), None),
        (Some(bn), act) => (normalise(bn, x, false), act),
        (None, act) => (x, act),
    };
    match act {
        Some(act) => act.apply(x),
        None => x,
    }
}

/// `bn` applied through cnnzoo's kernels, with the running-statistics update of Burn's
/// `BatchNorm::forward_train` (private to burn-nn, so its few lines are repeated here; the
/// statistics themselves stay in Burn's `RunningState` fields).
fn normalise<const D: usize>(bn: &BatchNorm, x: Tensor<D>, relu: bool) -> Tensor<D> {
    let device = x.device();
    let (gamma, beta, eps) = (bn.gamma.val(), bn.beta.val(), bn.epsilon);
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        return cnnzoo_kernels::batch_norm(x, gamma, beta, mean, var, eps, relu);
    }
    let (y, mean, var) = cnnzoo_kernels::batch_norm_train(x, gamma, beta, eps, relu);
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update((running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m)).detach());
    bn.running_var
        .update((running_var.mul_scalar(1.0 - m) + var.detach().mul_scalar(m)).detach());
    y
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::norm_act;
    use crate::blocks::Activation;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn batch_norm_matches_burns_module_in_training_and_eval() {
        // Two training steps (output and running statistics) then eval, on inputs with a large
        // mean so a one-pass variance would lose it.
        let device = Device::flex().autodiff();
        device.seed(5);
        let ours = BatchNormConfig::new(6).init(&device);
        let burns = ours.clone();
        for step in 0..2 {
            let x: Tensor<4> =
                Tensor::random([4, 6, 5, 3], Distribution::Normal(50.0, 2.0), &device);
            let (a, b) = (
                values(norm_act(Some(&ours), x.clone(), None)),
                values(burns.forward(x)),
            );
            assert!(
                max_diff(&a, &b) < 1e-4,
                "step {step} output: {}",
                max_diff(&a, &b)
            );
        }
        let mean = values(ours.running_mean.value());
        let var = values(ours.running_var.value());
        let burn_mean = values(burns.running_mean.value());
        let burn_var = values(burns.running_var.value());
        assert!(max_diff(&mean, &burn_mean) < 1e-4, "running mean");
        assert!(max_diff(&var, &burn_var) < 1e-4, "running variance");
        // The running statistics moved away from their initial 0 and 1 (batch means near 50
        // and variances near 4 pulled in twice with momentum 0.1: about 9.5 and 1.6).
        assert!(mean.iter().all(|v| *v > 5.0), "running mean {mean:?}");
        assert!(var.iter().all(|v| *v > 1.2), "running variance {var:?}");
        // Spread around the running mean (about 9.5), so the ReLU both clips and passes.
        let x: Tensor<4> = Tensor::random([2, 6, 4, 4], Distribution::Normal(9.5, 20.0), &device);
        let (ours, burns) = (ours.valid(), burns.valid());
        let x = x.inner();
        let (a, b) = (
            values(norm_act(Some(&ours), x.clone(), None)),
            values(burns.forward(x.clone())),
        );
        assert!(max_diff(&a, &b) < 1e-4, "eval output: {}", max_diff(&a, &b));
        let fused = values(norm_act(Some(&ours), x.clone(), Some(Activation::Relu)));
        let reference = values(burn::tensor::activation::relu(burns.forward(x)));
        assert!(max_diff(&fused, &reference) < 1e-4, "eval + relu");
        assert!(fused.contains(&0.0) && fused.iter().any(|v| *v > 0.0));
    }
}
