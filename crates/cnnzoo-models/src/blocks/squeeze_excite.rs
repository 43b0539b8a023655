//! Squeeze-and-Excitation: squeeze (global average pool), excite (reduce, ReLU, expand,
//! sigmoid), then scale the channels.
//!
//! The two fully connected layers are 1x1 convolutions with bias, timm's layout (`fc1`,
//! `fc2`), so timm's SE weights load as they are.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::blocks::layers::conv2d;
use crate::graph::{self, Graph, Trace, Value};
use crate::init::conv2d_kaiming;
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Where an SE unit sits in a residual block (the SE paper's integration ablation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SePosition {
    /// On the residual branch, before the addition (SE-ResNet).
    #[default]
    Standard,
    /// Before the residual branch, on the block input.
    Pre,
    /// After the addition (before the block's final activation).
    Post,
    /// On the shortcut, in parallel with the residual branch.
    Identity,
}

impl std::str::FromStr for SePosition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(SePosition::Standard),
            "pre" => Ok(SePosition::Pre),
            "post" => Ok(SePosition::Post),
            "identity" => Ok(SePosition::Identity),
            other => Err(format!(
                "unknown SE position '{other}' (expected standard, pre, post or identity)"
            )),
        }
    }
}

/// timm's `make_divisible(v, divisor, round_limit=0.)`: round to the nearest multiple of
/// `divisor`, at least `divisor`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = ((v + d / 2.0) as usize / divisor) * divisor;
    rounded.max(divisor)
}

/// Configuration of a [`SqueezeExcite`] unit.
#[derive(Config, Debug)]
pub struct SqueezeExciteConfig {
    /// Channels of the feature map being recalibrated.
    pub channels: usize,
    /// Reduction ratio r of the bottleneck (16 in the SE paper and timm).
    #[config(default = 16)]
    pub reduction: usize,
    /// The reduced width is rounded to a multiple of this (timm: 8; 1 gives exactly C / r).
    #[config(default = 8)]
    pub divisor: usize,
}

impl SqueezeExciteConfig {
    /// Width of the bottleneck: `C / r` rounded as timm does.
    pub fn reduced_channels(&self) -> usize {
        make_divisible(
            self.channels as f64 / self.reduction.max(1) as f64,
            self.divisor.max(1),
        )
    }

    /// Builds the unit.
    pub fn init(&self, device: &Device) -> SqueezeExcite {
        let rd = self.reduced_channels();
        SqueezeExcite {
            fc1: conv2d_kaiming(&Conv2dConfig::new([self.channels, rd], [1, 1]), device),
            fc2: conv2d_kaiming(&Conv2dConfig::new([rd, self.channels], [1, 1]), device),
        }
    }
}

/// A Squeeze-and-Excitation unit.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// Reduction "FC" (1x1 conv with bias), C -> C / r.
    pub fc1: Conv2d,
    /// Expansion "FC" (1x1 conv with bias), C / r -> C.
    pub fc2: Conv2d,
}

impl SqueezeExcite {
    /// The per-channel gates in (0, 1), shape `[N, C, 1, 1]`.
    pub fn gates(&self, x: Tensor<4>) -> Tensor<4> {
        let squeezed = x.mean_dim(3).mean_dim(2);
        sigmoid(conv2d(&self.fc2, relu(conv2d(&self.fc1, squeezed))))
    }

    /// Recalibrates `x`: each channel multiplied by its gate.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gates = self.gates(x.clone());
        x * gates
    }

    /// `x * gates(x) + shortcut` in one expression: the channel-wise axpy of SE-ResNet.
    pub fn forward_add(&self, x: Tensor<4>, shortcut: Tensor<4>) -> Tensor<4> {
        let gates = self.gates(x.clone());
        x * gates + shortcut
    }
}

impl Summarize for SqueezeExcite {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let squeezed = [input[0], 1, 1];
        let r = s.conv2d(join(prefix, "fc1"), &self.fc1, squeezed)?;
        s.conv2d(join(prefix, "fc2"), &self.fc2, r)?;
        Ok(input)
    }
}

impl Trace for SqueezeExcite {
    /// `x * gates(x)`: squeeze, the two 1x1 "FCs" with a ReLU between, sigmoid, scale.
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let s = g.global_avg_pool(&join(prefix, "squeeze"), x);
        let s = g.conv(&join(prefix, "fc1"), &self.fc1, s);
        let s = g.activation(&join(prefix, "relu"), graph::Activation::Relu, s);
        let s = g.conv(&join(prefix, "fc2"), &self.fc2, s);
        let gates = g.activation(&join(prefix, "sigmoid"), graph::Activation::Sigmoid, s);
        g.mul(&join(prefix, "scale"), x, gates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn reduced_width_follows_timm_rounding() {
        assert_eq!(SqueezeExciteConfig::new(256).reduced_channels(), 16);
        assert_eq!(SqueezeExciteConfig::new(2048).reduced_channels(), 128);
        // 64 / 16 = 4 rounds up to timm's minimum of 8.
        assert_eq!(SqueezeExciteConfig::new(64).reduced_channels(), 8);
        assert_eq!(
            SqueezeExciteConfig::new(64)
                .with_divisor(1)
                .reduced_channels(),
            4
        );
        assert_eq!(make_divisible(20.0, 8), 24);
    }

    #[test]
    fn params_are_two_biased_fcs() {
        let se = SqueezeExciteConfig::new(256).init(&Device::default());
        assert_eq!(count_trainable(&se), 2 * 256 * 16 + 16 + 256);
    }

    #[test]
    fn gates_are_sigmoid_of_the_excited_channel_means() {
        let device = Device::default();
        let mut se = SqueezeExciteConfig::new(2)
            .with_reduction(1)
            .with_divisor(1)
            .init(&device);
        // fc1 = identity with zero bias, fc2 = identity with zero bias: gate = sigmoid(relu(mean)).
        let eye = TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2, 1, 1]);
        se.fc1.weight = burn::module::Param::from_data(eye.clone(), &device);
        se.fc2.weight = burn::module::Param::from_data(eye, &device);
        se.fc1.bias = Some(burn::module::Param::from_data(
            TensorData::new(vec![0.0f32; 2], [2]),
            &device,
        ));
        se.fc2.bias = Some(burn::module::Param::from_data(
            TensorData::new(vec![0.0f32; 2], [2]),
            &device,
        ));
        // Channel 0 mean 2, channel 1 mean -1 (relu -> 0, gate 0.5).
        let x = TensorData::new(
            vec![1.0f32, 3.0, 1.0, 3.0, -1.0, -1.0, -1.0, -1.0],
            [1, 2, 2, 2],
        );
        let y: Vec<f32> = se
            .forward(Tensor::from_data(x, &device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let g0 = 1.0 / (1.0 + (-2.0f32).exp());
        let expected = [g0, 3.0 * g0, g0, 3.0 * g0, -0.5, -0.5, -0.5, -0.5];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn fused_scale_add_equals_scale_then_add() {
        let device = Device::default();
        let se = SqueezeExciteConfig::new(16).init(&device);
        let x = Tensor::<4>::random([2, 16, 4, 4], Distribution::Default, &device);
        let sc = Tensor::<4>::random([2, 16, 4, 4], Distribution::Default, &device);
        let a = se.forward_add(x.clone(), sc.clone());
        let b = se.forward(x) + sc;
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert!(diff < 1e-6);
    }
}

/// How a network places SE units: ratio, rounding and position (stored in network configs).
#[derive(Config, Debug, PartialEq)]
pub struct SeSettings {
    /// Reduction ratio r.
    #[config(default = 16)]
    pub reduction: usize,
    /// Rounding of the reduced width (timm: 8).
    #[config(default = 8)]
    pub divisor: usize,
    /// Integration position in a residual block.
    #[config(default = "SePosition::Standard")]
    pub position: SePosition,
}

impl SeSettings {
    /// The unit for a feature map of `channels`.
    pub fn unit(&self, channels: usize) -> SqueezeExciteConfig {
        SqueezeExciteConfig::new(channels)
            .with_reduction(self.reduction)
            .with_divisor(self.divisor)
    }
}
