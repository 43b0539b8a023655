//! Stems: the layers before the first stage (ImageNet 7x7/2 + max pool, the deep 3x3 stem of
//! ResNet-D, or CIFAR 3x3/1).

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
    /// Three 3x3 units (the first strided, the first two at half the width), then 3x3 / 2 max
    /// pool: ResNet-D's stem ("bag of tricks"), as timm's `stem_type='deep'`.
    Deep,
}

impl StemKind {
    /// The stem's convolution from `in_channels` to `width` (norm and activation: defaults).
    pub fn conv(self, in_channels: usize, width: usize) -> ConvBnActConfig {
        match self {
            StemKind::ImageNet => ConvBnActConfig::square(in_channels, width, 7).with_stride(2),
            StemKind::Cifar => ConvBnActConfig::square(in_channels, width, 3),
            StemKind::Deep => ConvBnActConfig::square(width / 2, width, 3),
        }
    }

    /// The units before [`conv`](Self::conv), with `conv`'s norm and activation: the deep stem's
    /// 3x3 / 2 from `in_channels` to `width / 2` and 3x3 at `width / 2`; none for the others.
    pub fn deep_units(self, in_channels: usize, conv: &ConvBnActConfig) -> Vec<ConvBnActConfig> {
        if self != StemKind::Deep {
            return Vec::new();
        }
        let half = conv.out_channels / 2;
        let like = |i, o, stride| ConvBnActConfig {
            in_channels: i,
            out_channels: o,
            stride,
            ..conv.clone()
        };
        vec![like(in_channels, half, 2), like(half, half, 1)]
    }

    /// True for the stems that end in a 3x3 / 2 max pool.
    fn pools(self) -> bool {
        matches!(self, StemKind::ImageNet | StemKind::Deep)
    }
}

/// A stem: the deep stem's first units, a convolution unit and, for ImageNet sizes, a 3x3 / 2
/// max pool.
#[derive(Module, Debug)]
pub struct Stem {
    /// The deep stem's units before `conv` (timm's `conv1.0` ... `conv1.4`); empty otherwise.
    pub deep: Vec<ConvBnAct>,
    /// The convolution unit (timm's `conv1` / `bn1`, DenseNet's `conv0` / `norm0`).
    pub conv: ConvBnAct,
    /// The ImageNet stem's max pool.
    #[module(skip)]
    pub pool: Option<Pool2d>,
}

impl Stem {
    /// Builds a stem of `kind` for `in_channels` inputs around the convolution unit `conv`.
    pub fn new(
        kind: StemKind,
        in_channels: usize,
        conv: &ConvBnActConfig,
        device: &Device,
    ) -> Self {
        Stem {
            deep: kind
                .deep_units(in_channels, conv)
                .iter()
                .map(|u| u.init(device))
                .collect(),
            conv: conv.init(device),
            pool: kind.pools().then(|| Pool2d::max(3, 2, 1)),
        }
    }

    /// Applies the convolution unit and the pool.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_tapped(x, &mut no_tap)
    }

    /// [`forward`](Self::forward), showing the convolution unit's output to `tap` as `conv`.
    pub fn forward_tapped(&self, x: Tensor<4>, tap: UnitTap) -> Tensor<4> {
        let mut x = x;
        for (i, unit) in self.deep.iter().enumerate() {
            x = tap(&format!("deep.{i}"), unit, unit.forward(x));
        }
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
        let mut x = input;
        for (i, unit) in self.deep.iter().enumerate() {
            x = unit.summarize(&join(prefix, &format!("deep.{i}")), x, s)?;
        }
        let x = self.conv.summarize(&join(prefix, "conv"), x, s)?;
        match &self.pool {
            Some(p) => p.summarize(join(prefix, "pool"), x, s),
            None => Ok(x),
        }
    }
}

impl Trace for Stem {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let mut x = x;
        for (i, unit) in self.deep.iter().enumerate() {
            x = unit.trace(&join(prefix, &format!("deep.{i}")), x, g);
        }
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
        let stem = Stem::new(StemKind::ImageNet, 3, &StemKind::ImageNet.conv(3, 8), &d);
        assert_eq!(stem.forward(x.clone()).dims(), [1, 8, 16, 16]);
        let stem = Stem::new(StemKind::Cifar, 3, &StemKind::Cifar.conv(3, 8), &d);
        assert_eq!(stem.forward(x.clone()).dims(), [1, 8, 64, 64]);
        let stem = Stem::new(StemKind::Deep, 3, &StemKind::Deep.conv(3, 8), &d);
        assert_eq!(stem.forward(x).dims(), [1, 8, 16, 16]);
        let shapes: Vec<_> = stem
            .deep
            .iter()
            .map(|u| u.conv.weight.lazy_shape().dims::<4>())
            .collect();
        assert_eq!(shapes, vec![[4, 3, 3, 3], [4, 4, 3, 3]]);
        assert_eq!(stem.conv.conv.weight.lazy_shape().dims::<4>(), [8, 4, 3, 3]);
    }
}
