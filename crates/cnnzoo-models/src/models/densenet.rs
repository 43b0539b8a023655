//! DenseNet and DenseNet-BC (ImageNet and CIFAR variants).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::blocks::dense::{DenseBlock, DenseOptions, Transition};
use crate::blocks::layers::norm_act;
use crate::blocks::{Activation, Head, HeadKind, Norm, Stem, StemKind};
use crate::error::ModelError;
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Configuration of a [`DenseNet`].
#[derive(Config, Debug)]
pub struct DenseNetConfig {
    /// Output classes.
    pub num_classes: usize,
    /// Growth rate k: channels added by each layer.
    pub growth_rate: usize,
    /// Layers per dense block.
    pub blocks: Vec<usize>,
    /// Channels of the stem (64 for DenseNet-121, 2k for the CIFAR BC nets).
    pub stem_width: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// ImageNet stem (7x7/2 conv, BN, act, max pool) or CIFAR stem (one 3x3 conv).
    #[config(default = "StemKind::ImageNet")]
    pub stem: StemKind,
    /// Bottleneck width factor (4 in DenseNet-B/BC), or none for the basic DenseNet.
    #[config(default = "Some(4)")]
    pub bn_size: Option<usize>,
    /// Transition compression theta (0.5 in DenseNet-C/BC, 1 for none).
    #[config(default = 0.5)]
    pub compression: f64,
    /// Non-linearity.
    #[config(default = "Activation::Relu")]
    pub act: Activation,
    /// Normalisation.
    #[config(default = "Norm::BatchNorm")]
    pub norm: Norm,
    /// Classifier head.
    #[config(default = "HeadKind::Linear")]
    pub head: HeadKind,
}

impl DenseNetConfig {
    /// Checks the configuration; the error says what is inconsistent.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |reason: &str| {
            Err(ModelError::InvalidConfig {
                model: "DenseNet".into(),
                reason: reason.into(),
            })
        };
        if self.num_classes == 0 || self.in_channels == 0 || self.stem_width == 0 {
            return bad("classes, input channels and stem width must be positive");
        }
        if self.growth_rate == 0 || self.blocks.is_empty() || self.blocks.contains(&0) {
            return bad("growth rate and every block's layer count must be positive");
        }
        if !(self.compression > 0.0 && self.compression <= 1.0) {
            return bad("compression must be in (0, 1]");
        }
        if self.bn_size == Some(0) {
            return bad("bottleneck factor must be positive");
        }
        Ok(())
    }

    /// Builds the network (call [`validate`](Self::validate) first for a readable error).
    pub fn init(&self, device: &Device) -> DenseNet {
        let opts = DenseOptions {
            growth_rate: self.growth_rate,
            bn_size: self.bn_size,
            act: self.act,
            norm: self.norm,
        };
        let stem_conv = self.stem.conv(self.in_channels, self.stem_width);
        let stem_conv = match self.stem {
            StemKind::ImageNet | StemKind::Deep => {
                stem_conv.with_norm(self.norm).with_act(Some(self.act))
            }
            // The CIFAR nets start with a bare convolution; the first dense layer normalises.
            StemKind::Cifar => stem_conv.with_norm(Norm::None).with_act(None),
        };
        let mut channels = self.stem_width;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (i, &n) in self.blocks.iter().enumerate() {
            blocks.push(DenseBlock::new(channels, n, &opts, device));
            channels += n * self.growth_rate;
            if i + 1 < self.blocks.len() {
                transitions.push(Transition::new(channels, self.compression, &opts, device));
                channels = Transition::out_channels(channels, self.compression);
            }
        }
        DenseNet {
            stem: Stem::new(self.stem, self.in_channels, &stem_conv, device),
            blocks,
            transitions,
            norm_final: (self.norm == Norm::BatchNorm)
                .then(|| BatchNormConfig::new(channels).init(device)),
            act: self.act,
            head: Head::new(self.head, channels, self.num_classes, 0.0, device),
        }
    }
}

/// A densely connected network.
#[derive(Module, Debug)]
pub struct DenseNet {
    /// Stem (timm's `features.conv0` / `norm0` / `pool0`).
    pub stem: Stem,
    /// Dense blocks.
    pub blocks: Vec<DenseBlock>,
    /// Transitions between consecutive blocks.
    pub transitions: Vec<Transition>,
    /// Final BatchNorm (timm's `features.norm5`).
    pub norm_final: Option<BatchNorm>,
    /// Activation after the final norm.
    #[module(skip)]
    pub act: Activation,
    /// Classifier head.
    pub head: Head,
}

impl DenseNet {
    /// Feature map before the head.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if let Some(t) = self.transitions.get(i) {
                x = t.forward(x);
            }
        }
        norm_act(self.norm_final.as_ref(), x, Some(self.act))
    }

    /// Logits `[N, classes]` for images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.forward_features(x))
    }
}

impl Trace for DenseNet {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let mut x = self.stem.trace(&join(prefix, "stem"), x, g);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.trace(&join(prefix, &format!("blocks.{i}")), x, g);
            if let Some(t) = self.transitions.get(i) {
                x = t.trace(&join(prefix, &format!("transitions.{i}")), x, g);
            }
        }
        if let Some(bn) = &self.norm_final {
            x = g.batch_norm(&join(prefix, "norm_final"), bn, x);
        }
        x = self.act.trace(&join(prefix, "norm_final"), x, g);
        self.head.trace(&join(prefix, "head"), x, g)
    }
}

impl Summarize for DenseNet {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let mut x = self.stem.summarize(&join(prefix, "stem"), input, s)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.summarize(&join(prefix, &format!("blocks.{i}")), x, s)?;
            if let Some(t) = self.transitions.get(i) {
                x = t.summarize(&join(prefix, &format!("transitions.{i}")), x, s)?;
            }
        }
        if let Some(bn) = &self.norm_final {
            x = s.batch_norm(join(prefix, "norm_final"), bn, x);
        }
        self.head.summarize(&join(prefix, "head"), x, s)
    }
}
