//! Named variants: each name is a few lines of configuration of one generic network.

use serde::Serialize;

use crate::blocks::squeeze_excite::SeSettings;
use crate::blocks::{BlockKind, HeadKind, ShortcutKind};
use crate::error::ModelError;
use crate::models::ModelConfig;
use crate::models::densenet::DenseNetConfig;
use crate::models::inception::InceptionConfig;
use crate::models::resnet::{ResNetConfig, StemKind};
use crate::summary::FeatureShape;

/// The family a registered model belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Residual networks.
    ResNet,
    /// Residual networks with grouped 3x3 convolutions.
    ResNeXt,
    /// ResNet with Squeeze-and-Excitation.
    SeResNet,
    /// ResNeXt with Squeeze-and-Excitation.
    SeResNeXt,
    /// ResNet without shortcuts.
    Plain,
    /// Pre-activation ResNets (identity mappings: ResNet-v2, the CIFAR pre-act nets, WRN).
    PreAct,
    /// Densely connected networks.
    DenseNet,
    /// GoogLeNet and Inception-v3.
    Inception,
}

impl Family {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Family::ResNet => "resnet",
            Family::ResNeXt => "resnext",
            Family::SeResNet => "seresnet",
            Family::SeResNeXt => "seresnext",
            Family::Plain => "plain",
            Family::PreAct => "preact",
            Family::DenseNet => "densenet",
            Family::Inception => "inception",
        }
    }
}

/// Class count and input channels for a model being created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// Output classes (default: 1000 for ImageNet models, 10 for CIFAR models).
    pub num_classes: Option<usize>,
    /// Input channels (default 3).
    pub in_channels: Option<usize>,
}

/// A registered model: its name, family, default input and how to configure it.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Registry name (timm's where timm has the model).
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// Default input `[C, H, W]`.
    pub input: FeatureShape,
    /// One line saying what the model is.
    pub description: &'static str,
    build: fn() -> ModelConfig,
}

impl ModelSpec {
    /// The configuration with the given options applied.
    pub fn config(&self, options: ModelOptions) -> ModelConfig {
        let mut config = (self.build)();
        config.set_io(
            options.num_classes.unwrap_or(config.num_classes()),
            options.in_channels.unwrap_or(self.input[0]),
        );
        config
    }

    /// Default class count (the configuration's own: 1000 for ImageNet, 10 for CIFAR).
    pub fn num_classes(&self) -> usize {
        (self.build)().num_classes()
    }

    /// True for the 32x32 CIFAR-style variants.
    pub fn is_cifar(&self) -> bool {
        self.input[1] == 32
    }
}

const IMAGENET: FeatureShape = [3, 224, 224];
const CIFAR: FeatureShape = [3, 32, 32];
const IMAGENET_WIDTHS: [usize; 4] = [64, 128, 256, 512];

fn imagenet_resnet(block: BlockKind, layers: [usize; 4]) -> ResNetConfig {
    ResNetConfig::new(1000, IMAGENET_WIDTHS.to_vec(), layers.to_vec(), block)
        .with_zero_init_last(true)
}

fn resnext(layers: [usize; 4], cardinality: usize, base_width: usize) -> ResNetConfig {
    imagenet_resnet(BlockKind::Bottleneck, layers)
        .with_cardinality(cardinality)
        .with_base_width(base_width)
}

fn se(config: ResNetConfig) -> ResNetConfig {
    config.with_se(Some(SeSettings::new()))
}

/// Pre-activation order (identity mappings), without zero-init (timm's ResNet-v2 default).
fn preact(config: ResNetConfig) -> ResNetConfig {
    config.with_preact(true).with_zero_init_last(false)
}

/// timm's ResNet-v2: pre-activation, and a 1x1-convolution classifier after the pool.
fn resnetv2(layers: [usize; 4]) -> ResNetConfig {
    preact(imagenet_resnet(BlockKind::Bottleneck, layers)).with_head(HeadKind::PoolConv)
}

/// ResNet-D: the deep 3x3 stem (32, 32, 64) and average-pool downsampling shortcuts.
fn resnet_d(config: ResNetConfig) -> ResNetConfig {
    config.with_stem(StemKind::Deep).with_avg_down(true)
}

/// The identity-mappings paper's CIFAR bottleneck ResNet of `depth` = 9n + 2 layers:
/// 16/32/64 planes (x4 out), pre-activation, 1x1 projection where the shape changes.
fn cifar_preact_bottleneck(depth: usize) -> ResNetConfig {
    let n = (depth - 2) / 9;
    preact(
        ResNetConfig::new(10, vec![16, 32, 64], vec![n; 3], BlockKind::Bottleneck)
            .with_stem(StemKind::Cifar)
            .with_stem_width(16),
    )
}

/// Zagoruyko & Komodakis' WRN-`depth`-`k`: (depth - 4) / 6 pre-activation basic blocks per
/// stage at 16k / 32k / 64k channels, 1x1 projection where the width changes.
fn wide_cifar(depth: usize, k: usize) -> ResNetConfig {
    let n = (depth - 4) / 6;
    preact(
        ResNetConfig::new(
            10,
            vec![16 * k, 32 * k, 64 * k],
            vec![n; 3],
            BlockKind::Basic,
        )
        .with_stem(StemKind::Cifar)
        .with_stem_width(16),
    )
}

/// He et al.'s CIFAR ResNet of `depth` = 6n + 2 layers: 16/32/64 planes, option A.
fn cifar_resnet(depth: usize) -> ResNetConfig {
    let n = (depth - 2) / 6;
    ResNetConfig::new(10, vec![16, 32, 64], vec![n; 3], BlockKind::Basic)
        .with_stem(StemKind::Cifar)
        .with_stem_width(16)
        .with_shortcut(ShortcutKind::ZeroPad)
}

/// ResNeXt-29 for CIFAR: 3 stages of 3 bottlenecks, 64-channel stem, width `d` per group.
fn cifar_resnext(cardinality: usize, base_width: usize) -> ResNetConfig {
    ResNetConfig::new(10, vec![64, 128, 256], vec![3; 3], BlockKind::Bottleneck)
        .with_stem(StemKind::Cifar)
        .with_stem_width(64)
        .with_cardinality(cardinality)
        .with_base_width(base_width)
}

fn imagenet_densenet(growth: usize, blocks: [usize; 4], stem: usize) -> DenseNetConfig {
    DenseNetConfig::new(1000, growth, blocks.to_vec(), stem)
}

/// Huang et al.'s CIFAR DenseNet of `depth`: three blocks; BC halves the layers per block
/// (each has two convolutions), starts at 2k channels and compresses by 0.5.
fn cifar_densenet(depth: usize, growth: usize, bc: bool) -> DenseNetConfig {
    let per_block = if bc { (depth - 4) / 6 } else { (depth - 4) / 3 };
    let stem = if bc { 2 * growth } else { 16 };
    DenseNetConfig::new(10, growth, vec![per_block; 3], stem)
        .with_stem(StemKind::Cifar)
        .with_bn_size(bc.then_some(4))
        .with_compression(if bc { 0.5 } else { 1.0 })
}

macro_rules! entry {
    ($name:literal, $family:ident, $input:expr, $desc:literal, $build:expr) => {
        ModelSpec {
            name: $name,
            family: Family::$family,
            input: $input,
            description: $desc,
            build: || $build,
        }
    };
}

use BlockKind::{Basic, Bottleneck};

/// Every registered model, in display order.
pub static REGISTRY: &[ModelSpec] = &[
    entry!(
        "resnet18",
        ResNet,
        IMAGENET,
        "ResNet-18, basic blocks [2,2,2,2]",
        ModelConfig::ResNet(imagenet_resnet(Basic, [2, 2, 2, 2]))
    ),
    entry!(
        "resnet34",
        ResNet,
        IMAGENET,
        "ResNet-34, basic blocks [3,4,6,3]",
        ModelConfig::ResNet(imagenet_resnet(Basic, [3, 4, 6, 3]))
    ),
    entry!(
        "resnet50",
        ResNet,
        IMAGENET,
        "ResNet-50, bottlenecks [3,4,6,3]",
        ModelConfig::ResNet(imagenet_resnet(Bottleneck, [3, 4, 6, 3]))
    ),
    entry!(
        "resnet101",
        ResNet,
        IMAGENET,
        "ResNet-101, bottlenecks [3,4,23,3]",
        ModelConfig::ResNet(imagenet_resnet(Bottleneck, [3, 4, 23, 3]))
    ),
    entry!(
        "resnet152",
        ResNet,
        IMAGENET,
        "ResNet-152, bottlenecks [3,8,36,3]",
        ModelConfig::ResNet(imagenet_resnet(Bottleneck, [3, 8, 36, 3]))
    ),
    entry!(
        "resnet200",
        ResNet,
        IMAGENET,
        "ResNet-200, bottlenecks [3,24,36,3] (deeper)",
        ModelConfig::ResNet(imagenet_resnet(Bottleneck, [3, 24, 36, 3]))
    ),
    entry!(
        "wide_resnet50_2",
        ResNet,
        IMAGENET,
        "Wide ResNet-50-2: ResNet-50 with 2x wide bottlenecks (wider)",
        ModelConfig::ResNet(resnext([3, 4, 6, 3], 1, 128))
    ),
    entry!(
        "wide_resnet101_2",
        ResNet,
        IMAGENET,
        "Wide ResNet-101-2: ResNet-101 with 2x wide bottlenecks (wider)",
        ModelConfig::ResNet(resnext([3, 4, 23, 3], 1, 128))
    ),
    entry!(
        "resnetv2_50",
        PreAct,
        IMAGENET,
        "ResNet-v2-50: pre-activation bottlenecks [3,4,6,3] (identity mappings)",
        ModelConfig::ResNet(resnetv2([3, 4, 6, 3]))
    ),
    entry!(
        "resnetv2_101",
        PreAct,
        IMAGENET,
        "ResNet-v2-101: pre-activation bottlenecks [3,4,23,3]",
        ModelConfig::ResNet(resnetv2([3, 4, 23, 3]))
    ),
    entry!(
        "resnet18d",
        ResNet,
        IMAGENET,
        "ResNet-18-D: deep 3x3 stem, average-pool downsample (bag of tricks)",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Basic, [2, 2, 2, 2])))
    ),
    entry!(
        "resnet26d",
        ResNet,
        IMAGENET,
        "ResNet-26-D: bottlenecks [2,2,2,2], deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Bottleneck, [2, 2, 2, 2])))
    ),
    entry!(
        "resnet50d",
        ResNet,
        IMAGENET,
        "ResNet-50-D: deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Bottleneck, [3, 4, 6, 3])))
    ),
    entry!(
        "resnet101d",
        ResNet,
        IMAGENET,
        "ResNet-101-D: deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Bottleneck, [3, 4, 23, 3])))
    ),
    entry!(
        "resnet152d",
        ResNet,
        IMAGENET,
        "ResNet-152-D: deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Bottleneck, [3, 8, 36, 3])))
    ),
    entry!(
        "resnet200d",
        ResNet,
        IMAGENET,
        "ResNet-200-D: deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(imagenet_resnet(Bottleneck, [3, 24, 36, 3])))
    ),
    entry!(
        "resnext50_32x4d",
        ResNeXt,
        IMAGENET,
        "ResNeXt-50, cardinality 32, width 4",
        ModelConfig::ResNet(resnext([3, 4, 6, 3], 32, 4))
    ),
    entry!(
        "resnext50d_32x4d",
        ResNeXt,
        IMAGENET,
        "ResNeXt-50-D 32x4d: deep stem, average-pool downsample",
        ModelConfig::ResNet(resnet_d(resnext([3, 4, 6, 3], 32, 4)))
    ),
    entry!(
        "resnext101_32x4d",
        ResNeXt,
        IMAGENET,
        "ResNeXt-101, cardinality 32, width 4",
        ModelConfig::ResNet(resnext([3, 4, 23, 3], 32, 4))
    ),
    entry!(
        "resnext101_32x8d",
        ResNeXt,
        IMAGENET,
        "ResNeXt-101, cardinality 32, width 8",
        ModelConfig::ResNet(resnext([3, 4, 23, 3], 32, 8))
    ),
    entry!(
        "resnext101_64x4d",
        ResNeXt,
        IMAGENET,
        "ResNeXt-101, cardinality 64, width 4",
        ModelConfig::ResNet(resnext([3, 4, 23, 3], 64, 4))
    ),
    entry!(
        "seresnet18",
        SeResNet,
        IMAGENET,
        "SE-ResNet-18 (r=16)",
        ModelConfig::ResNet(se(imagenet_resnet(Basic, [2, 2, 2, 2])))
    ),
    entry!(
        "seresnet34",
        SeResNet,
        IMAGENET,
        "SE-ResNet-34 (r=16)",
        ModelConfig::ResNet(se(imagenet_resnet(Basic, [3, 4, 6, 3])))
    ),
    entry!(
        "seresnet50",
        SeResNet,
        IMAGENET,
        "SE-ResNet-50 (r=16)",
        ModelConfig::ResNet(se(imagenet_resnet(Bottleneck, [3, 4, 6, 3])))
    ),
    entry!(
        "seresnet101",
        SeResNet,
        IMAGENET,
        "SE-ResNet-101 (r=16)",
        ModelConfig::ResNet(se(imagenet_resnet(Bottleneck, [3, 4, 23, 3])))
    ),
    entry!(
        "seresnet152",
        SeResNet,
        IMAGENET,
        "SE-ResNet-152 (r=16)",
        ModelConfig::ResNet(se(imagenet_resnet(Bottleneck, [3, 8, 36, 3])))
    ),
    entry!(
        "seresnext26d_32x4d",
        SeResNeXt,
        IMAGENET,
        "SE-ResNeXt-26-D 32x4d (r=16): deep stem, average-pool downsample",
        ModelConfig::ResNet(se(resnet_d(resnext([2, 2, 2, 2], 32, 4))))
    ),
    entry!(
        "seresnext50_32x4d",
        SeResNeXt,
        IMAGENET,
        "SE-ResNeXt-50 32x4d (r=16)",
        ModelConfig::ResNet(se(resnext([3, 4, 6, 3], 32, 4)))
    ),
    entry!(
        "seresnext101_32x4d",
        SeResNeXt,
        IMAGENET,
        "SE-ResNeXt-101 32x4d (r=16)",
        ModelConfig::ResNet(se(resnext([3, 4, 23, 3], 32, 4)))
    ),
    entry!(
        "seresnext101_32x8d",
        SeResNeXt,
        IMAGENET,
        "SE-ResNeXt-101 32x8d (r=16)",
        ModelConfig::ResNet(se(resnext([3, 4, 23, 3], 32, 8)))
    ),
    entry!(
        "densenet121",
        DenseNet,
        IMAGENET,
        "DenseNet-BC-121, k=32",
        ModelConfig::DenseNet(imagenet_densenet(32, [6, 12, 24, 16], 64))
    ),
    entry!(
        "densenet161",
        DenseNet,
        IMAGENET,
        "DenseNet-BC-161, k=48",
        ModelConfig::DenseNet(imagenet_densenet(48, [6, 12, 36, 24], 96))
    ),
    entry!(
        "densenet169",
        DenseNet,
        IMAGENET,
        "DenseNet-BC-169, k=32",
        ModelConfig::DenseNet(imagenet_densenet(32, [6, 12, 32, 32], 64))
    ),
    entry!(
        "densenet201",
        DenseNet,
        IMAGENET,
        "DenseNet-BC-201, k=32",
        ModelConfig::DenseNet(imagenet_densenet(32, [6, 12, 48, 32], 64))
    ),
    entry!(
        "googlenet",
        Inception,
        IMAGENET,
        "GoogLeNet (Inception v1 with BN, torchvision layout)",
        ModelConfig::GoogLeNet(InceptionConfig::new(1000).with_dropout(0.2))
    ),
    entry!(
        "inception_v3",
        Inception,
        [3, 299, 299],
        "Inception-v3",
        ModelConfig::InceptionV3(InceptionConfig::new(1000).with_dropout(0.5))
    ),
    entry!(
        "se_inception_v3",
        Inception,
        [3, 299, 299],
        "SE-Inception-v3: an SE unit (r = 16) on every module's output",
        ModelConfig::InceptionV3(
            InceptionConfig::new(1000)
                .with_dropout(0.5)
                .with_se(Some(SeSettings::new()))
        )
    ),
    entry!(
        "inception_v4",
        Inception,
        [3, 299, 299],
        "Inception-v4: deep mixed stem, 4 A + 7 B + 3 C modules, two reductions",
        ModelConfig::InceptionV4(InceptionConfig::new(1000).with_dropout(0.2))
    ),
    entry!(
        "inception_resnet_v2",
        Inception,
        [3, 299, 299],
        "Inception-ResNet-v2: residual Inception blocks scaled by 0.17 / 0.10 / 0.20",
        ModelConfig::InceptionResNetV2(InceptionConfig::new(1000).with_dropout(0.2))
    ),
    entry!(
        "resnet20",
        ResNet,
        CIFAR,
        "CIFAR ResNet-20 (3x3 blocks, option A)",
        ModelConfig::ResNet(cifar_resnet(20))
    ),
    entry!(
        "resnet32",
        ResNet,
        CIFAR,
        "CIFAR ResNet-32 (option A)",
        ModelConfig::ResNet(cifar_resnet(32))
    ),
    entry!(
        "resnet44",
        ResNet,
        CIFAR,
        "CIFAR ResNet-44 (option A)",
        ModelConfig::ResNet(cifar_resnet(44))
    ),
    entry!(
        "resnet56",
        ResNet,
        CIFAR,
        "CIFAR ResNet-56 (option A)",
        ModelConfig::ResNet(cifar_resnet(56))
    ),
    entry!(
        "resnet110",
        ResNet,
        CIFAR,
        "CIFAR ResNet-110 (option A)",
        ModelConfig::ResNet(cifar_resnet(110))
    ),
    entry!(
        "resnet1202",
        ResNet,
        CIFAR,
        "CIFAR ResNet-1202 (option A)",
        ModelConfig::ResNet(cifar_resnet(1202))
    ),
    entry!(
        "preact_resnet110",
        PreAct,
        CIFAR,
        "CIFAR pre-activation ResNet-110 (basic blocks, option A)",
        ModelConfig::ResNet(preact(cifar_resnet(110)))
    ),
    entry!(
        "preact_resnet164",
        PreAct,
        CIFAR,
        "CIFAR pre-activation ResNet-164 (bottlenecks, 1x1 projection)",
        ModelConfig::ResNet(cifar_preact_bottleneck(164))
    ),
    entry!(
        "preact_resnet1001",
        PreAct,
        CIFAR,
        "CIFAR pre-activation ResNet-1001 (bottlenecks, 1x1 projection)",
        ModelConfig::ResNet(cifar_preact_bottleneck(1001))
    ),
    entry!(
        "wrn16_8",
        PreAct,
        CIFAR,
        "CIFAR Wide ResNet WRN-16-8 (pre-activation, wider)",
        ModelConfig::ResNet(wide_cifar(16, 8))
    ),
    entry!(
        "wrn28_10",
        PreAct,
        CIFAR,
        "CIFAR Wide ResNet WRN-28-10 (pre-activation, wider)",
        ModelConfig::ResNet(wide_cifar(28, 10))
    ),
    entry!(
        "wrn40_4",
        PreAct,
        CIFAR,
        "CIFAR Wide ResNet WRN-40-4 (pre-activation, wider)",
        ModelConfig::ResNet(wide_cifar(40, 4))
    ),
    entry!(
        "plain20",
        Plain,
        CIFAR,
        "CIFAR plain-20 (ResNet-20 without shortcuts)",
        ModelConfig::ResNet(cifar_resnet(20).with_shortcut(ShortcutKind::None))
    ),
    entry!(
        "plain32",
        Plain,
        CIFAR,
        "CIFAR plain-32",
        ModelConfig::ResNet(cifar_resnet(32).with_shortcut(ShortcutKind::None))
    ),
    entry!(
        "plain44",
        Plain,
        CIFAR,
        "CIFAR plain-44",
        ModelConfig::ResNet(cifar_resnet(44).with_shortcut(ShortcutKind::None))
    ),
    entry!(
        "plain56",
        Plain,
        CIFAR,
        "CIFAR plain-56",
        ModelConfig::ResNet(cifar_resnet(56).with_shortcut(ShortcutKind::None))
    ),
    entry!(
        "plain110",
        Plain,
        CIFAR,
        "CIFAR plain-110",
        ModelConfig::ResNet(cifar_resnet(110).with_shortcut(ShortcutKind::None))
    ),
    entry!(
        "seresnet20",
        SeResNet,
        CIFAR,
        "CIFAR SE-ResNet-20 (r=16)",
        ModelConfig::ResNet(se(cifar_resnet(20)))
    ),
    entry!(
        "seresnet56",
        SeResNet,
        CIFAR,
        "CIFAR SE-ResNet-56 (r=16)",
        ModelConfig::ResNet(se(cifar_resnet(56)))
    ),
    entry!(
        "seresnet110",
        SeResNet,
        CIFAR,
        "CIFAR SE-ResNet-110 (r=16)",
        ModelConfig::ResNet(se(cifar_resnet(110)))
    ),
    entry!(
        "resnext29_8x64d",
        ResNeXt,
        CIFAR,
        "CIFAR ResNeXt-29, cardinality 8, width 64",
        ModelConfig::ResNet(cifar_resnext(8, 64))
    ),
    entry!(
        "resnext29_16x64d",
        ResNeXt,
        CIFAR,
        "CIFAR ResNeXt-29, cardinality 16, width 64",
        ModelConfig::ResNet(cifar_resnext(16, 64))
    ),
    entry!(
        "densenet40_k12",
        DenseNet,
        CIFAR,
        "CIFAR DenseNet-40, k=12 (no bottleneck, no compression)",
        ModelConfig::DenseNet(cifar_densenet(40, 12, false))
    ),
    entry!(
        "densenet_bc100_k12",
        DenseNet,
        CIFAR,
        "CIFAR DenseNet-BC-100, k=12",
        ModelConfig::DenseNet(cifar_densenet(100, 12, true))
    ),
    entry!(
        "densenet_bc250_k24",
        DenseNet,
        CIFAR,
        "CIFAR DenseNet-BC-250, k=24",
        ModelConfig::DenseNet(cifar_densenet(250, 24, true))
    ),
    entry!(
        "densenet_bc190_k40",
        DenseNet,
        CIFAR,
        "CIFAR DenseNet-BC-190, k=40",
        ModelConfig::DenseNet(cifar_densenet(190, 40, true))
    ),
];

/// Every registered model.
pub fn list() -> &'static [ModelSpec] {
    REGISTRY
}

/// Models whose name matches a shell-style wildcard pattern (`seres*`, `resnet?0`).
pub fn find(pattern: &str) -> Result<Vec<&'static ModelSpec>, ModelError> {
    let glob = glob::Pattern::new(pattern).map_err(|e| ModelError::InvalidConfig {
        model: format!("pattern '{pattern}'"),
        reason: e.to_string(),
    })?;
    Ok(REGISTRY.iter().filter(|s| glob.matches(s.name)).collect())
}

/// The registered model of that name, or an error suggesting the closest names. A timm
/// pretrained name (`resnet50.a1_in1k`) means its architecture; which tags exist is for the
/// weight loaders (`cnnzoo_interop::pretrained`) to say.
pub fn spec(name: &str) -> Result<&'static ModelSpec, ModelError> {
    let wanted = name.trim().to_ascii_lowercase();
    let wanted = wanted
        .split_once('.')
        .map_or(wanted.as_str(), |(arch, _)| arch);
    REGISTRY
        .iter()
        .find(|s| s.name == wanted)
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            suggestions: suggest(wanted),
        })
}

/// Up to three registered names closest to `name`.
pub fn suggest(name: &str) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = REGISTRY
        .iter()
        .map(|s| (strsim::jaro_winkler(name, s.name), s.name))
        .filter(|(score, _)| *score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The configuration of a registered model, with options applied and validated.
pub fn create(name: &str, options: ModelOptions) -> Result<ModelConfig, ModelError> {
    let config = spec(name)?.config(options);
    config.validate()?;
    Ok(config)
}
