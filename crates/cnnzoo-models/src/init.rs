//! Weight initialisation as timm and torchvision do it.
//!
//! Burn's Kaiming initialiser divides the fan-out by the group count; PyTorch's
//! `kaiming_normal_(mode="fan_out")` does not. Grouped (ResNeXt) convolutions would start
//! with a different scale, so the standard deviation is computed here, PyTorch's way.

use burn::module::Param;
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

/// Kaiming-normal (fan_out, relu) standard deviation for a conv weight
/// `[out, in/groups, kh, kw]`, as `torch.nn.init.kaiming_normal_` computes it.
pub fn kaiming_fan_out_std(out_channels: usize, kernel: [usize; 2]) -> f64 {
    let fan_out = (out_channels * kernel[0] * kernel[1]) as f64;
    (2.0 / fan_out).sqrt()
}

/// Builds a convolution with timm's initialisation: Kaiming-normal (fan_out, relu) weights and
/// PyTorch's default uniform bias (when there is one).
pub fn conv2d_kaiming(config: &Conv2dConfig, device: &Device) -> Conv2d {
    // Burn's default initialiser draws the bias as PyTorch's default does; only the weight changes.
    let mut conv = config.init(device);
    let std = kaiming_fan_out_std(config.channels[1], config.kernel_size);
    let shape = conv.weight.lazy_shape();
    conv.weight = Initializer::Normal { mean: 0.0, std }.init(shape, device);
    conv
}

/// A one-dimensional parameter filled with a constant (BatchNorm gamma = 0 for zero-init-last).
pub fn constant(len: usize, value: f64, device: &Device) -> Param<Tensor<1>> {
    Initializer::Constant { value }.init([len], device)
}
