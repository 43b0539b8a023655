//! DenseNet blocks: every layer sees the concatenation of all earlier feature maps of its
//! block and adds `growth_rate` new channels; transitions compress (theta) and halve the size.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::activation::Activation;
use super::conv_bn_act::{BnActConv, ConvBnActConfig, Norm};
use super::pool::Pool2d;
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Options shared by every dense layer of a network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseOptions {
    /// New channels per layer (k).
    pub growth_rate: usize,
    /// Bottleneck width factor: a 1x1 to `bn_size * k` before the 3x3 (DenseNet-B), or none.
    pub bn_size: Option<usize>,
    /// The non-linearity.
    pub act: Activation,
    /// The normalisation.
    pub norm: Norm,
}

/// One dense layer: [BN-act-1x1 to bn_size*k], BN-act-3x3 to k, concatenated to its input.
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// The 1x1 bottleneck (DenseNet-B and BC), timm's `norm1` / `conv1`.
    pub bottleneck: Option<BnActConv>,
    /// The 3x3 producing k channels, timm's `norm2` / `conv2`.
    pub conv: BnActConv,
}

impl DenseLayer {
    /// A layer taking `in_channels`.
    pub fn new(in_channels: usize, o: &DenseOptions, device: &Device) -> Self {
        let unit = |i, out, k| {
            ConvBnActConfig::square(i, out, k)
                .with_norm(o.norm)
                .with_act(Some(o.act))
                .init_pre_activation(device)
        };
        let (bottleneck, mid) = match o.bn_size {
            Some(b) => (
                Some(unit(in_channels, b * o.growth_rate, 1)),
                b * o.growth_rate,
            ),
            None => (None, in_channels),
        };
        DenseLayer {
            bottleneck,
            conv: unit(mid, o.growth_rate, 3),
        }
    }

    /// The k new channels for input `x`.
    pub fn new_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.bottleneck {
            Some(b) => b.forward(x),
            None => x,
        };
        self.conv.forward(x)
    }
}

/// A dense block: a sequence of dense layers with concatenating connectivity.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// The layers, in order.
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    /// `num_layers` layers on `in_channels`; outputs `in_channels + num_layers * k` channels.
    pub fn new(in_channels: usize, num_layers: usize, o: &DenseOptions, device: &Device) -> Self {
        let layers = (0..num_layers)
            .map(|i| DenseLayer::new(in_channels + i * o.growth_rate, o, device))
            .collect();
        DenseBlock { layers }
    }

    /// Runs the block; each layer reads every earlier feature map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut features = vec![x];
        for layer in &self.layers {
            let input = if features.len() == 1 {
                features[0].clone()
            } else {
                Tensor::cat(features.clone(), 1)
            };
            features.push(layer.new_features(input));
        }
        Tensor::cat(features, 1)
    }
}

impl Trace for DenseBlock {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let mut features = vec![x];
        for (i, layer) in self.layers.iter().enumerate() {
            let p = join(prefix, &format!("layers.{i}"));
            let mut h = g.concat(&join(&p, "input"), features.clone());
            if let Some(b) = &layer.bottleneck {
                h = b.trace(&join(&p, "bottleneck"), h, g);
            }
            features.push(layer.conv.trace(&join(&p, "conv"), h, g));
        }
        g.concat(&join(prefix, "concat"), features)
    }
}

impl Summarize for DenseBlock {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let mut channels = input[0];
        for (i, layer) in self.layers.iter().enumerate() {
            let p = join(prefix, &format!("layers.{i}"));
            let x = [channels, input[1], input[2]];
            let x = match &layer.bottleneck {
                Some(b) => b.summarize(&join(&p, "bottleneck"), x, s)?,
                None => x,
            };
            let y = layer.conv.summarize(&join(&p, "conv"), x, s)?;
            channels += y[0];
            s.push(
                join(&p, "concat"),
                "Concat",
                vec![channels, input[1], input[2]],
                0,
                0,
            );
        }
        Ok([channels, input[1], input[2]])
    }
}

/// Transition between dense blocks: BN-act-1x1 conv to floor(theta * C), then 2x2 average pool.
#[derive(Module, Debug)]
pub struct Transition {
    /// The compressing 1x1 unit.
    pub unit: BnActConv,
    /// The 2x2 / 2 average pool.
    #[module(skip)]
    pub pool: Pool2d,
}

impl Transition {
    /// Output channels of a transition with compression `theta` on `in_channels`.
    pub fn out_channels(in_channels: usize, theta: f64) -> usize {
        (in_channels as f64 * theta).floor() as usize
    }

    /// A transition from `in_channels` with compression `theta` (1 = none, 0.5 = DenseNet-C).
    pub fn new(in_channels: usize, theta: f64, o: &DenseOptions, device: &Device) -> Self {
        Transition {
            unit: ConvBnActConfig::square(in_channels, Self::out_channels(in_channels, theta), 1)
                .with_norm(o.norm)
                .with_act(Some(o.act))
                .init_pre_activation(device),
            pool: Pool2d::avg(2, 2, 0),
        }
    }

    /// Compresses and halves the feature map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(self.unit.forward(x))
    }
}

impl Trace for Transition {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let x = self.unit.trace(&join(prefix, "unit"), x, g);
        self.pool.trace(&join(prefix, "pool"), x, g)
    }
}

impl Summarize for Transition {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = self.unit.summarize(&join(prefix, "unit"), input, s)?;
        self.pool.summarize(join(prefix, "pool"), x, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;
    use burn::tensor::Distribution;

    fn opts(bn_size: Option<usize>) -> DenseOptions {
        DenseOptions {
            growth_rate: 4,
            bn_size,
            act: Activation::Relu,
            norm: Norm::BatchNorm,
        }
    }

    #[test]
    fn block_concatenates_and_keeps_its_input_channels_first() {
        let d = Device::default();
        let block = DenseBlock::new(6, 3, &opts(Some(4)), &d);
        let x = Tensor::<4>::random([2, 6, 5, 5], Distribution::Default, &d);
        let y = block.forward(x.clone());
        assert_eq!(y.dims(), [2, 6 + 3 * 4, 5, 5]);
        // The block's input passes through unchanged as its first channels.
        let head = y.slice([0..2, 0..6, 0..5, 0..5]);
        let diff: f32 = (head - x).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
        let mut s = Summary::default();
        assert_eq!(block.summarize("b", [6, 5, 5], &mut s).unwrap(), [18, 5, 5]);
        assert_eq!(s.params(), count_trainable(&block));
    }

    #[test]
    fn layer_params_with_and_without_bottleneck() {
        let d = Device::default();
        // Bottleneck: BN(8) + 1x1 8->16 + BN(16) + 3x3 16->4.
        let l = DenseLayer::new(8, &opts(Some(4)), &d);
        assert_eq!(count_trainable(&l), 16 + 8 * 16 + 32 + 16 * 4 * 9);
        // Basic: BN(8) + 3x3 8->4.
        let l = DenseLayer::new(8, &opts(None), &d);
        assert_eq!(count_trainable(&l), 16 + 8 * 4 * 9);
    }

    #[test]
    fn transition_compresses_and_halves() {
        let d = Device::default();
        let t = Transition::new(25, 0.5, &opts(None), &d);
        let x = Tensor::<4>::random([1, 25, 8, 8], Distribution::Default, &d);
        assert_eq!(t.forward(x).dims(), [1, 12, 4, 4]);
    }
}
