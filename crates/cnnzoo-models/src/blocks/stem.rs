//! Stems: the layers before the first stage (ImageNet 7x7/2 + max pool, or CIFAR 3x3/1).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv_bn_act::{ConvBnAct, ConvBnActConfig, UnitTap, no_tap};
use super::pool::Pool2d;
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Which stem a network starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StemKind {
    /// 7x7 / 2 convolution unit, then 3x3 / 2 max pool (224x224 inputs).
    #[default]
    ImageNet,
    /// 3x3 / 1 convolution unit (32x32 inputs).
    Cifar,
}

impl StemKind {
    /// The stem's convolution from `in_channels` to `width` (norm and activation: defaults).
    pub fn conv(self, in_channels: usize, width: usize) -> ConvBnActConfig {
        match self {
            StemKind::ImageNet => ConvBnActConfig::square(in_channels, width, 7).with_stride(2),
            StemKind::Cifar => ConvBnActConfig::square(in_channels, width, 3),
        }
    }
}

/// A stem: a convolution unit and, for ImageNet, a 3x3 / 2 max pool.
#[derive(Module, Debug)]
pub struct Stem {
    /// The convolution unit (timm's `conv1` / `bn1`, DenseNet's `conv0` / `norm0`).
    pub conv: ConvBnAct,
    /// The ImageNet stem's max pool.
    #[module(skip)]
    pub pool: Option<Pool2d>,
}

impl Stem {
    /// Builds a stem of `kind` around the convolution unit `conv`.
    pub fn new(kind: StemKind, conv: &ConvBnActConfig, device: &Device) -> Self {
        Stem {
            conv: conv.init(device),
            pool: (kind == StemKind::ImageNet).then(|| Pool2d::max(3, 2, 1)),
        }
    }

    /// Applies the convolution unit and the pool.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_tapped(x, &mut no_tap)
    }

    /// [`forward`](Self::forward), showing the convolution unit's output to `tap` as `conv`.
    pub fn forward_tapped(&self, x: Tensor<4>, tap: UnitTap) -> Tensor<4> {
        let x = tap("conv", &self.conv, self.conv.forward(x));
        match &self.pool {
            Some(p) => p.forward(x),
            None => x,
        }
    }
}

impl Summarize for Stem {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = self.conv.summarize(&join(prefix, "conv"), input, s)?;
        match &self.pool {
            Some(p) => p.summarize(join(prefix, "pool"), x, s),
            None => Ok(x),
        }
    }
}

impl Trace for Stem {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let x = self.conv.trace(&join(prefix, "conv"), x, g);
        match &self.pool {
            Some(p) => p.trace(&join(prefix, "pool"), x, g),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn imagenet_stem_quarters_the_size_and_cifar_keeps_it() {
        let d = Device::default();
        let x = Tensor::<4>::random([1, 3, 64, 64], Distribution::Default, &d);
        let stem = Stem::new(StemKind::ImageNet, &StemKind::ImageNet.conv(3, 8), &d);
        assert_eq!(stem.forward(x.clone()).dims(), [1, 8, 16, 16]);
        let stem = Stem::new(StemKind::Cifar, &StemKind::Cifar.conv(3, 8), &d);
        assert_eq!(stem.forward(x).dims(), [1, 8, 64, 64]);
    }
}
