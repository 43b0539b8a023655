//! Whole networks and the two enums that let the registry, the CLI and the trainer treat
//! them alike: [`ModelConfig`] (serialisable description) and [`Model`] (the built module).

pub mod densenet;
pub mod inception;
pub mod inception_v4;
pub mod resnet;
pub mod resnext_forms;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary};
use densenet::{DenseNet, DenseNetConfig};
use inception::{GoogLeNet, InceptionConfig, InceptionV3};
use inception_v4::{InceptionResNetV2, InceptionV4};
use resnet::{ResNet, ResNetConfig};

/// A serialisable description of any network of the zoo.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum ModelConfig {
    /// ResNet, ResNeXt, SE variants, plain nets.
    ResNet(ResNetConfig),
    /// DenseNet / DenseNet-BC.
    DenseNet(DenseNetConfig),
    /// GoogLeNet (Inception v1).
    GoogLeNet(InceptionConfig),
    /// Inception-v3.
    InceptionV3(InceptionConfig),
    /// Inception-v4.
    InceptionV4(InceptionConfig),
    /// Inception-ResNet-v2.
    InceptionResNetV2(InceptionConfig),
}

impl ModelConfig {
    /// Checks the configuration; the error says what is inconsistent.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            ModelConfig::ResNet(c) => c.validate(),
            ModelConfig::DenseNet(c) => c.validate(),
            ModelConfig::GoogLeNet(c) => c.validate("GoogLeNet"),
            ModelConfig::InceptionV3(c) => c.validate("Inception-v3"),
            ModelConfig::InceptionV4(c) => c.validate("Inception-v4"),
            ModelConfig::InceptionResNetV2(c) => c.validate("Inception-ResNet-v2"),
        }
    }

    /// Builds the network on `device`, checking the configuration first.
    pub fn try_init(&self, device: &Device) -> Result<Model, ModelError> {
        self.validate()?;
        Ok(self.init(device))
    }

    /// Builds the network on `device` (parameters are materialised lazily, on first use).
    pub fn init(&self, device: &Device) -> Model {
        match self {
            ModelConfig::ResNet(c) => Model::ResNet(c.init(device)),
            ModelConfig::DenseNet(c) => Model::DenseNet(c.init(device)),
            ModelConfig::GoogLeNet(c) => Model::GoogLeNet(c.init_googlenet(device)),
            ModelConfig::InceptionV3(c) => Model::InceptionV3(c.init_inception_v3(device)),
            ModelConfig::InceptionV4(c) => Model::InceptionV4(c.init_inception_v4(device)),
            ModelConfig::InceptionResNetV2(c) => {
                Model::InceptionResNetV2(c.init_inception_resnet_v2(device))
            }
        }
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::ResNet(c) => c.num_classes,
            ModelConfig::DenseNet(c) => c.num_classes,
            ModelConfig::GoogLeNet(c)
            | ModelConfig::InceptionV3(c)
            | ModelConfig::InceptionV4(c)
            | ModelConfig::InceptionResNetV2(c) => c.num_classes,
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::ResNet(c) => c.in_channels,
            ModelConfig::DenseNet(c) => c.in_channels,
            ModelConfig::GoogLeNet(c)
            | ModelConfig::InceptionV3(c)
            | ModelConfig::InceptionV4(c)
            | ModelConfig::InceptionResNetV2(c) => c.in_channels,
        }
    }

    /// Sets the class count and input channels.
    pub fn set_io(&mut self, num_classes: usize, in_channels: usize) {
        match self {
            ModelConfig::ResNet(c) => (c.num_classes, c.in_channels) = (num_classes, in_channels),
            ModelConfig::DenseNet(c) => (c.num_classes, c.in_channels) = (num_classes, in_channels),
            ModelConfig::GoogLeNet(c)
            | ModelConfig::InceptionV3(c)
            | ModelConfig::InceptionV4(c)
            | ModelConfig::InceptionResNetV2(c) => {
                (c.num_classes, c.in_channels) = (num_classes, in_channels);
            }
        }
    }
}

/// Any built network of the zoo.
// One value per model, built once: the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    /// ResNet, ResNeXt, SE variants, plain nets.
    ResNet(ResNet),
    /// DenseNet / DenseNet-BC.
    DenseNet(DenseNet),
    /// GoogLeNet.
    GoogLeNet(GoogLeNet),
    /// Inception-v3.
    InceptionV3(InceptionV3),
    /// Inception-v4.
    InceptionV4(InceptionV4),
    /// Inception-ResNet-v2.
    InceptionResNetV2(InceptionResNetV2),
}

impl Model {
    /// Logits `[N, classes]` for images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::ResNet(m) => m.forward(x),
            Model::DenseNet(m) => m.forward(x),
            Model::GoogLeNet(m) => m.forward(x),
            Model::InceptionV3(m) => m.forward(x),
            Model::InceptionV4(m) => m.forward(x),
            Model::InceptionResNetV2(m) => m.forward(x),
        }
    }

    /// Logits and auxiliary logits (Inception nets built with `aux_logits`; empty otherwise).
    pub fn forward_with_aux(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        match self {
            Model::GoogLeNet(m) => m.forward_with_aux(x),
            Model::InceptionV3(m) => m.forward_with_aux(x),
            other => (other.forward(x), Vec::new()),
        }
    }

    /// The SE gates `[N, C, 1, 1]` a forward pass of `x` applies, by block or module name in
    /// depth order (`stages.1.0`, `mixed_5.0`): empty for a network without SE units.
    pub fn se_gates(&self, x: Tensor<4>) -> crate::blocks::inception::Gates {
        let mut gates = Vec::new();
        match self {
            Model::ResNet(net) => {
                let mut x = net.stem.forward(x);
                for (i, stage) in net.stages.iter().enumerate() {
                    for (j, block) in stage.iter().enumerate() {
                        let (y, g) = block.forward_with_gates(x);
                        x = y;
                        if let Some(g) = g {
                            gates.push((format!("stages.{i}.{j}"), g));
                        }
                    }
                }
            }
            Model::DenseNet(_) => {}
            Model::GoogLeNet(m) => {
                m.forward_gated(x, &mut gates);
            }
            Model::InceptionV3(m) => {
                m.forward_gated(x, &mut gates);
            }
            Model::InceptionV4(m) => {
                m.forward_gated(x, &mut gates);
            }
            Model::InceptionResNetV2(m) => {
                m.forward_gated(x, &mut gates);
            }
        }
        gates
    }

    /// The inference forward pass as a graph of operations (see [`crate::graph`]).
    pub fn graph(&self) -> Result<Graph, ModelError> {
        let mut g = Graph::new();
        let input = g.input;
        let output = self.trace("", input, &mut g);
        g.finish(output)
            .map_err(|reason| ModelError::InvalidConfig {
                model: "the traced graph".into(),
                reason,
            })
    }

    /// How many logits the model gives for one input of shape `[C, H, W]`, or where that
    /// input breaks: the check to make before a forward pass.
    pub fn logits_for(&self, input: FeatureShape) -> Result<usize, ShapeError> {
        let mut s = Summary::default();
        Ok(self.summarize("", input, &mut s)?[0])
    }

    /// The per-layer summary for one input of shape `[C, H, W]`, or where that input breaks.
    pub fn summary(&self, input: FeatureShape) -> Result<Summary, ShapeError> {
        let mut s = Summary::default();
        self.summarize("", input, &mut s)?;
        Ok(s)
    }
}

impl Trace for Model {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        match self {
            Model::ResNet(m) => m.trace(prefix, x, g),
            Model::DenseNet(m) => m.trace(prefix, x, g),
            Model::GoogLeNet(m) => m.trace(prefix, x, g),
            Model::InceptionV3(m) => m.trace(prefix, x, g),
            Model::InceptionV4(m) => m.trace(prefix, x, g),
            Model::InceptionResNetV2(m) => m.trace(prefix, x, g),
        }
    }
}

impl Summarize for Model {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        match self {
            Model::ResNet(m) => m.summarize(prefix, input, s),
            Model::DenseNet(m) => m.summarize(prefix, input, s),
            Model::GoogLeNet(m) => m.summarize(prefix, input, s),
            Model::InceptionV3(m) => m.summarize(prefix, input, s),
            Model::InceptionV4(m) => m.summarize(prefix, input, s),
            Model::InceptionResNetV2(m) => m.summarize(prefix, input, s),
        }
    }
}
