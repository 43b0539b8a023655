//! One residual-network definition for ResNet, ResNeXt, SE-ResNet, SE-ResNeXt, plain nets and
//! the CIFAR variants, chosen by configuration as in timm's single `ResNet` class.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::blocks::squeeze_excite::SeSettings;
use crate::blocks::{
    Activation, BlockKind, Head, HeadKind, Norm, ResidualBlock, ResidualBlockConfig, ShortcutKind,
    Stem, UnitTap,
};
use crate::error::ModelError;
use crate::graph::{Graph, Trace, Value, trace_all};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

pub use crate::blocks::StemKind;

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Output classes.
    pub num_classes: usize,
    /// Planes of each stage (each 2x downsample doubles them in the standard nets).
    pub widths: Vec<usize>,
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// Basic or bottleneck blocks.
    pub block: BlockKind,
    /// Input channels (3 for RGB, 1 for Fashion-MNIST).
    #[config(default = 3)]
    pub in_channels: usize,
    /// ImageNet or CIFAR stem.
    #[config(default = "StemKind::ImageNet")]
    pub stem: StemKind,
    /// Output channels of the stem.
    #[config(default = 64)]
    pub stem_width: usize,
    /// Groups of the bottleneck 3x3 (ResNeXt cardinality).
    #[config(default = 1)]
    pub cardinality: usize,
    /// Width per group (ResNeXt "d" at 64 planes).
    #[config(default = 64)]
    pub base_width: usize,
    /// Shortcut option A / B / C, or none for a plain net.
    #[config(default = "ShortcutKind::Projection")]
    pub shortcut: ShortcutKind,
    /// Squeeze-and-Excitation in every block, if any.
    #[config(default = "None")]
    pub se: Option<SeSettings>,
    /// Non-linearity.
    #[config(default = "Activation::Relu")]
    pub act: Activation,
    /// Normalisation.
    #[config(default = "Norm::BatchNorm")]
    pub norm: Norm,
    /// Classifier head.
    #[config(default = "HeadKind::Linear")]
    pub head: HeadKind,
    /// Zero-init the last BN of each residual branch (timm's default for ImageNet nets).
    #[config(default = false)]
    pub zero_init_last: bool,
}

impl ResNetConfig {
    /// The block configuration of block `index` (0-based) of stage `stage`.
    fn block(&self, stage: usize, index: usize, in_channels: usize) -> ResidualBlockConfig {
        let stride = if stage > 0 && index == 0 { 2 } else { 1 };
        ResidualBlockConfig::new(in_channels, self.widths[stage], self.block)
            .with_stride(stride)
            .with_cardinality(self.cardinality)
            .with_base_width(self.base_width)
            .with_shortcut(self.shortcut)
            .with_se(self.se.clone())
            .with_act(self.act)
            .with_norm(self.norm)
            .with_zero_init_last(self.zero_init_last)
    }

    /// Checks the configuration; the error says what is inconsistent.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::InvalidConfig {
            model: "ResNet".into(),
            reason,
        };
        if self.num_classes == 0 || self.in_channels == 0 || self.stem_width == 0 {
            return Err(bad(
                "classes, input channels and stem width must be positive".into(),
            ));
        }
        if self.widths.is_empty() || self.widths.len() != self.layers.len() {
            return Err(bad(format!(
                "{} stage widths for {} stage depths",
                self.widths.len(),
                self.layers.len()
            )));
        }
        let mut channels = self.stem_width;
        for (stage, &n) in self.layers.iter().enumerate() {
            for i in 0..n {
                let b = self.block(stage, i, channels);
                b.validate()
                    .map_err(|r| bad(format!("stage {} block {i}: {r}", stage + 1)))?;
                channels = b.out_channels();
            }
        }
        Ok(())
    }

    /// Builds the network (call [`validate`](Self::validate) first for a readable error).
    pub fn init(&self, device: &Device) -> ResNet {
        let stem_conv = self
            .stem
            .conv(self.in_channels, self.stem_width)
            .with_norm(self.norm)
            .with_act(Some(self.act));
        let mut channels = self.stem_width;
        let mut stages = Vec::with_capacity(self.layers.len());
        for (stage, &n) in self.layers.iter().enumerate() {
            let mut blocks = Vec::with_capacity(n);
            for i in 0..n {
                let b = self.block(stage, i, channels);
                channels = b.out_channels();
                blocks.push(b.init(device));
            }
            stages.push(blocks);
        }
        ResNet {
            stem: Stem::new(self.stem, &stem_conv, device),
            stages,
            head: Head::new(self.head, channels, self.num_classes, 0.0, device),
        }
    }
}

/// A residual (or plain) network: stem, stages of residual blocks, head.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem (timm's `conv1` / `bn1` / `maxpool`).
    pub stem: Stem,
    /// Stages of blocks (timm's `layer1` ... `layer4`).
    pub stages: Vec<Vec<ResidualBlock>>,
    /// Classifier head.
    pub head: Head,
}

impl ResNet {
    /// Feature map before the head.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        // Untapped blocks, so that each may fuse its end (see `ResidualBlock::forward`).
        let mut x = self.stem.forward(x);
        for block in self.stages.iter().flatten() {
            x = block.forward(x);
        }
        x
    }

    /// [`forward_features`](Self::forward_features), showing every conv unit's output to `tap`
    /// in depth order, named by its path (`stem.conv`, `stages.0.1.conv2`, ...).
    pub fn forward_features_tapped(&self, x: Tensor<4>, tap: UnitTap) -> Tensor<4> {
        let mut x = self.stem.forward_tapped(x, &mut |role, unit, t| {
            tap(&format!("stem.{role}"), unit, t)
        });
        for (i, stage) in self.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                x = block.forward_tapped(x, &mut |role, unit, t| {
                    tap(&format!("stages.{i}.{j}.{role}"), unit, t)
                });
            }
        }
        x
    }

    /// Logits, with every conv unit's output shown to `tap` (see
    /// [`forward_features_tapped`](Self::forward_features_tapped)).
    pub fn forward_tapped(&self, x: Tensor<4>, tap: UnitTap) -> Tensor<2> {
        self.head.forward(self.forward_features_tapped(x, tap))
    }

    /// Logits `[N, classes]` for images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.forward_features(x))
    }
}

impl Trace for ResNet {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let mut x = self.stem.trace(&join(prefix, "stem"), x, g);
        for (i, stage) in self.stages.iter().enumerate() {
            x = trace_all(stage, &join(prefix, &format!("stages.{i}")), x, g);
        }
        self.head.trace(&join(prefix, "head"), x, g)
    }
}

impl Summarize for ResNet {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let mut x = self.stem.summarize(&join(prefix, "stem"), input, s)?;
        for (i, stage) in self.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                x = block.summarize(&join(prefix, &format!("stages.{i}.{j}")), x, s)?;
            }
        }
        self.head.summarize(&join(prefix, "head"), x, s)
    }
}
