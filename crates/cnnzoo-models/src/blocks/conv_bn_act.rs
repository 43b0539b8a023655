//! The conv + BatchNorm + activation unit (and its pre-activation twin used by DenseNet).
//!
//! Activation and normalisation are selectable so that the vanishing-gradient studies can
//! swap ReLU for sigmoid or tanh and remove BatchNorm without touching the networks.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::blocks::activation::Activation;
use crate::blocks::layers::{conv_act, conv2d, norm_act};
use crate::graph::{Graph, Trace, Value};
use crate::init::{constant, conv2d_kaiming};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// The normalisation after a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// BatchNorm (the default); the convolution then has no bias.
    #[default]
    BatchNorm,
    /// No normalisation; the convolution gets a bias instead.
    None,
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "batchnorm" | "bn" => Ok(Norm::BatchNorm),
            "none" => Ok(Norm::None),
            other => Err(format!(
                "unknown normalisation '{other}' (expected batchnorm or none)"
            )),
        }
    }
}

/// Configuration of a [`ConvBnAct`] (and of a [`BnActConv`]).
#[derive(Config, Debug)]
pub struct ConvBnActConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `[height, width]` (Inception uses 1x7 and 7x1).
    pub kernel: [usize; 2],
    /// Stride on both axes.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding `[height, width]`; `None` pads to keep the size at stride 1 (`k / 2`).
    #[config(default = "None")]
    pub padding: Option<[usize; 2]>,
    /// Channel groups (cardinality of a ResNeXt 3x3).
    #[config(default = 1)]
    pub groups: usize,
    /// Normalisation after (or, for [`BnActConv`], before) the convolution.
    #[config(default = "Norm::BatchNorm")]
    pub norm: Norm,
    /// The non-linearity; `None` leaves the output linear (last conv of a residual branch).
    #[config(default = "Some(Activation::Relu)")]
    pub act: Option<Activation>,
    /// BatchNorm epsilon (torchvision's Inception nets use 1e-3).
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// Start the BatchNorm scale at zero, so a residual branch starts as the identity.
    #[config(default = false)]
    pub zero_init_norm: bool,
    /// Whether the convolution has a bias; `None` gives it one exactly when there is no norm
    /// (the last convolution of a pre-activation branch has neither).
    #[config(default = "None")]
    pub bias: Option<bool>,
}

impl ConvBnActConfig {
    /// A square `k x k` unit from `in_channels` to `out_channels`.
    pub fn square(in_channels: usize, out_channels: usize, k: usize) -> Self {
        Self::new(in_channels, out_channels, [k, k])
    }

    fn conv_config(&self) -> Conv2dConfig {
        let [ph, pw] = self
            .padding
            .unwrap_or([self.kernel[0] / 2, self.kernel[1] / 2]);
        Conv2dConfig::new([self.in_channels, self.out_channels], self.kernel)
            .with_stride([self.stride; 2])
            .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
            .with_groups(self.groups)
            .with_bias(self.bias.unwrap_or(self.norm == Norm::None))
    }

    fn norm_layer(&self, channels: usize, device: &Device) -> Option<BatchNorm> {
        match self.norm {
            Norm::BatchNorm => {
                let mut bn = BatchNormConfig::new(channels)
                    .with_epsilon(self.bn_eps)
                    .init(device);
                if self.zero_init_norm {
                    bn.gamma = constant(channels, 0.0, device);
                }
                Some(bn)
            }
            Norm::None => None,
        }
    }

    /// Builds conv -> norm -> activation.
    pub fn init(&self, device: &Device) -> ConvBnAct {
        ConvBnAct {
            conv: conv2d_kaiming(&self.conv_config(), device),
            bn: self.norm_layer(self.out_channels, device),
            act: self.act,
        }
    }

    /// Builds norm -> activation -> conv (the pre-activation order of DenseNet).
    pub fn init_pre_activation(&self, device: &Device) -> BnActConv {
        BnActConv {
            bn: self.norm_layer(self.in_channels, device),
            act: self.act,
            conv: conv2d_kaiming(&self.conv_config(), device),
        }
    }
}

/// Convolution, then BatchNorm (optional), then a non-linearity (optional).
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution (no bias when followed by BatchNorm).
    pub conv: Conv2d,
    /// The normalisation, absent for `Norm::None`.
    pub bn: Option<BatchNorm>,
    /// The non-linearity, absent on the last conv of a residual branch.
    #[module(skip)]
    pub act: Option<Activation>,
}

/// An observer of a forward pass: called with each conv unit's name, the unit and its output,
/// in depth order; what it returns continues the pass. The gradient-flow analysis adds
/// zero-valued probes here to read the gradient with respect to each unit's output.
pub type UnitTap<'a> = &'a mut dyn FnMut(&str, &ConvBnAct, Tensor<4>) -> Tensor<4>;

/// The tap of an ordinary forward pass: leaves every output as it is.
pub fn no_tap(_: &str, _: &ConvBnAct, x: Tensor<4>) -> Tensor<4> {
    x
}

impl ConvBnAct {
    /// Applies conv, norm and activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.bn {
            Some(bn) => norm_act(Some(bn), conv2d(&self.conv, x), self.act),
            None => conv_act(&self.conv, x, self.act),
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv.weight.lazy_shape().dims::<4>()[0]
    }
}

impl Summarize for ConvBnAct {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = s.conv2d(join(prefix, "conv"), &self.conv, input)?;
        Ok(match &self.bn {
            Some(bn) => s.batch_norm(join(prefix, "bn"), bn, x),
            None => x,
        })
    }
}

impl Trace for ConvBnAct {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let mut x = g.conv(&join(prefix, "conv"), &self.conv, x);
        if let Some(bn) = &self.bn {
            x = g.batch_norm(&join(prefix, "bn"), bn, x);
        }
        match self.act {
            Some(act) => act.trace(prefix, x, g),
            None => x,
        }
    }
}

/// BatchNorm (optional), then a non-linearity, then a convolution: the pre-activation unit.
#[derive(Module, Debug)]
pub struct BnActConv {
    /// The normalisation of the input, absent for `Norm::None`.
    pub bn: Option<BatchNorm>,
    /// The non-linearity before the convolution.
    #[module(skip)]
    pub act: Option<Activation>,
    /// The convolution.
    pub conv: Conv2d,
}

impl BnActConv {
    /// Applies norm, activation and conv.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = norm_act(self.bn.as_ref(), x, self.act);
        conv2d(&self.conv, x)
    }
}

impl Summarize for BnActConv {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = match &self.bn {
            Some(bn) => s.batch_norm(join(prefix, "bn"), bn, input),
            None => input,
        };
        s.conv2d(join(prefix, "conv"), &self.conv, x)
    }
}

impl Trace for BnActConv {
    fn trace(&self, prefix: &str, mut x: Value, g: &mut Graph) -> Value {
        if let Some(bn) = &self.bn {
            x = g.batch_norm(&join(prefix, "bn"), bn, x);
        }
        if let Some(act) = self.act {
            x = act.trace(prefix, x, g);
        }
        g.conv(&join(prefix, "conv"), &self.conv, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;

    #[test]
    fn conv_bn_relu_shapes_params_and_non_negativity() {
        let device = Device::default();
        let unit = ConvBnActConfig::square(3, 8, 3)
            .with_stride(2)
            .init(&device);
        let x = Tensor::<4>::random([2, 3, 9, 9], burn::tensor::Distribution::Default, &device);
        let y = unit.forward(x);
        assert_eq!(y.dims(), [2, 8, 5, 5]);
        let min: f32 = y.min().into_scalar();
        assert!(min >= 0.0, "relu output must be non-negative, got {min}");
        // 3*8*9 conv weights, no bias, 2*8 BN affine parameters.
        assert_eq!(count_trainable(&unit), 3 * 8 * 9 + 16);
        let mut s = Summary::default();
        assert_eq!(unit.summarize("u", [3, 9, 9], &mut s).unwrap(), [8, 5, 5]);
        assert_eq!(s.params(), 3 * 8 * 9 + 16);
        assert_eq!(s.macs(), 8 * 5 * 5 * 3 * 9);
    }

    #[test]
    fn no_norm_adds_a_bias_and_sigmoid_bounds_the_output() {
        let device = Device::default();
        let unit = ConvBnActConfig::square(2, 4, 1)
            .with_norm(Norm::None)
            .with_act(Some(Activation::Sigmoid))
            .init(&device);
        assert!(unit.bn.is_none());
        assert_eq!(count_trainable(&unit), 2 * 4 + 4);
        let x = Tensor::<4>::random([1, 2, 3, 3], burn::tensor::Distribution::Default, &device);
        let v: Vec<f32> = unit.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|e| *e > 0.0 && *e < 1.0));
    }

    #[test]
    fn kaiming_fan_out_scale_is_pytorchs_even_for_groups() {
        let device = Device::default();
        // 64 outputs, 3x3, 32 groups: PyTorch's fan_out = 64 * 9 whatever the groups.
        let unit = ConvBnActConfig::square(64, 64, 3)
            .with_groups(32)
            .init(&device);
        let w: Vec<f32> = unit
            .conv
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let var = w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / w.len() as f64;
        let expected = 2.0 / (64.0 * 9.0);
        assert!(
            (var / expected - 1.0).abs() < 0.25,
            "variance {var} vs {expected}"
        );
    }

    #[test]
    fn activation_and_norm_parse_from_names() {
        assert_eq!("Tanh".parse::<Activation>().unwrap(), Activation::Tanh);
        assert_eq!("none".parse::<Norm>().unwrap(), Norm::None);
        assert!("gelu".parse::<Activation>().unwrap_err().contains("relu"));
    }
}
