//! One residual-network definition for ResNet, ResNeXt, SE-ResNet, SE-ResNeXt, plain nets,
//! pre-activation ResNets (ResNet-v2, WRN), ResNet-D and the CIFAR variants, chosen by
//! configuration as in timm's single `ResNet` class.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::blocks::layers::norm_act;
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
    /// Pre-activation blocks (identity mappings), a bare stem conv and a final BN + act.
    #[config(default = false)]
    pub preact: bool,
    /// ResNet-D's average-pool projection shortcut (with [`StemKind::Deep`] in timm's `d` nets).
    #[config(default = false)]
    pub avg_down: bool,
    /// Dropout between the convolutions of every block (WRN), 0 for none.
    #[config(default = 0.0)]
    pub block_dropout: f64,
    /// Stochastic depth: the last block's drop probability, rising linearly from 0 at the first
    /// (timm's `drop_path_rate`).
    #[config(default = 0.0)]
    pub drop_path_rate: f64,
}

impl ResNetConfig {
    /// Blocks in the whole network.
    fn total_blocks(&self) -> usize {
        self.layers.iter().sum()
    }

    /// The block configuration of block `index` (0-based) of stage `stage`.
    fn block(&self, stage: usize, index: usize, in_channels: usize) -> ResidualBlockConfig {
        let stride = if stage > 0 && index == 0 { 2 } else { 1 };
        let depth_index = self.layers[..stage].iter().sum::<usize>() + index;
        let drop_path = if self.total_blocks() > 1 {
            self.drop_path_rate * depth_index as f64 / (self.total_blocks() - 1) as f64
        } else {
            self.drop_path_rate
        };
        ResidualBlockConfig::new(in_channels, self.widths[stage], self.block)
            .with_stride(stride)
            .with_cardinality(self.cardinality)
            .with_base_width(self.base_width)
            .with_shortcut(self.shortcut)
            .with_se(self.se.clone())
            .with_act(self.act)
            .with_norm(self.norm)
            .with_zero_init_last(self.zero_init_last)
            .with_preact(self.preact)
            .with_avg_down(self.avg_down)
            .with_dropout(self.block_dropout)
            .with_drop_path(drop_path)
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
        if self.stem == StemKind::Deep && self.stem_width < 2 {
            return Err(bad("the deep stem needs a stem width of at least 2".into()));
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
        let stem_conv = self.stem.conv(self.in_channels, self.stem_width);
        // A pre-activation net's stem is a bare convolution: the first block normalises.
        let stem_conv = if self.preact {
            stem_conv
                .with_norm(Norm::None)
                .with_bias(Some(self.norm == Norm::None))
                .with_act(None)
        } else {
            stem_conv.with_norm(self.norm).with_act(Some(self.act))
        };
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
        let preact = self.preact.then_some(self.act);
        ResNet {
            stem: Stem::new(self.stem, self.in_channels, &stem_conv, device),
            stages,
            norm: (self.preact && self.norm == Norm::BatchNorm)
                .then(|| BatchNormConfig::new(channels).init(device)),
            head: Head::new(self.head, channels, self.num_classes, 0.0, device),
            final_act: preact,
            avg_down: self.avg_down,
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
    /// Pre-activation nets: the BatchNorm after the last block (timm ResNet-v2's `norm`).
    pub norm: Option<BatchNorm>,
    /// Classifier head.
    pub head: Head,
    /// Pre-activation nets: the activation after the last block (with `norm`).
    #[module(skip)]
    pub final_act: Option<Activation>,
    /// ResNet-D shortcuts (timm numbers their projection `downsample.1`, after the pool).
    #[module(skip)]
    pub avg_down: bool,
}

impl ResNet {
    /// Feature map before the head.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        // Untapped blocks, so that each may fuse its end (see `ResidualBlock::forward`).
        let mut x = self.stem.forward(x);
        for block in self.stages.iter().flatten() {
            x = block.forward(x);
        }
        self.finish(x)
    }

    /// The final BN + act of a pre-activation net; the identity for the others.
    pub(crate) fn finish(&self, x: Tensor<4>) -> Tensor<4> {
        match self.final_act {
            Some(act) => norm_act(self.norm.as_ref(), x, Some(act)),
            None => x,
        }
    }

    /// True for pre-activation nets (ResNet-v2 layout).
    pub fn is_preact(&self) -> bool {
        self.final_act.is_some()
    }

    /// Every block, in depth order.
    pub fn blocks(&self) -> impl Iterator<Item = &ResidualBlock> {
        self.stages.iter().flatten()
    }

    /// Logits with the blocks flagged in `deleted` (depth order) removed as
    /// [`ResidualBlock::lesioned`] removes them: the test-time lesion of "residual networks
    /// behave like ensembles". An error names a block that cannot be deleted (a plain block that
    /// changes the shape) or a flag list of the wrong length.
    pub fn forward_lesioned(&self, x: Tensor<4>, deleted: &[bool]) -> Result<Tensor<2>, String> {
        let count = self.blocks().count();
        if deleted.len() != count {
            return Err(format!(
                "{} deletion flags for {count} blocks",
                deleted.len()
            ));
        }
        let mut x = self.stem.forward(x);
        for (k, (block, &gone)) in self.blocks().zip(deleted).enumerate() {
            x = if gone {
                block.lesioned(x).ok_or_else(|| {
                    format!("block {k} changes the shape and has no shortcut: it cannot be deleted")
                })?
            } else {
                block.forward(x)
            };
        }
        Ok(self.head.forward(self.finish(x)))
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
        self.finish(x)
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
        if let Some(bn) = &self.norm {
            x = g.batch_norm(&join(prefix, "norm"), bn, x);
        }
        if let Some(act) = self.final_act {
            x = act.trace(&join(prefix, "norm"), x, g);
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
        if let Some(bn) = &self.norm {
            x = s.batch_norm(join(prefix, "norm"), bn, x);
        }
        self.head.summarize(&join(prefix, "head"), x, s)
    }
}
