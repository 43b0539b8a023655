//! Classifier heads: global average pooling + linear (default), or the NiN head (1x1 conv to
//! the class count, then global average pooling, no fully connected layer).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::pool::global_avg_pool;
use crate::blocks::layers::conv2d;
use crate::graph::{Graph, Trace, Value};
use crate::init::conv2d_kaiming;
use crate::summary::{FeatureShape, ShapeError, Summary, join};

/// Which classifier ends the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Global average pool, then a linear layer (`fc`).
    #[default]
    Linear,
    /// A 1x1 convolution to the class count, then global average pool (Network in Network).
    Nin,
    /// Global average pool, then a 1x1 convolution (timm's `use_conv` head of ResNet-v2): the
    /// linear head with a `[classes, C, 1, 1]` weight.
    PoolConv,
}

impl std::str::FromStr for HeadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "linear" | "gap" => Ok(HeadKind::Linear),
            "nin" => Ok(HeadKind::Nin),
            "poolconv" | "pool-conv" => Ok(HeadKind::PoolConv),
            other => Err(format!(
                "unknown head '{other}' (expected linear, nin or poolconv)"
            )),
        }
    }
}

/// The layer that maps pooled (or unpooled) features to logits.
#[derive(Module, Debug)]
pub enum Classifier {
    /// GAP then `fc`.
    Linear(Linear),
    /// 1x1 conv then GAP.
    Nin(Conv2d),
    /// GAP then 1x1 conv.
    PoolConv(Conv2d),
}

/// A classifier head: dropout (zero by default), then the classifier.
#[derive(Module, Debug)]
pub struct Head {
    /// Dropout before the classifier (GoogLeNet 0.2, Inception-v3 0.5, others 0).
    pub dropout: Dropout,
    /// The classifier.
    pub fc: Classifier,
}

impl Head {
    /// Builds a head for `features` input channels and `classes` outputs.
    pub fn new(
        kind: HeadKind,
        features: usize,
        classes: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let fc = match kind {
            HeadKind::Linear => {
                Classifier::Linear(LinearConfig::new(features, classes).init(device))
            }
            HeadKind::Nin => Classifier::Nin(conv2d_kaiming(
                &Conv2dConfig::new([features, classes], [1, 1]),
                device,
            )),
            HeadKind::PoolConv => {
                // nn.Linear's initialisation, as the linear head it is.
                let linear = LinearConfig::new(features, classes).init(device);
                let mut conv = Conv2dConfig::new([features, classes], [1, 1]).init(device);
                conv.weight = burn::module::Param::from_tensor(
                    linear
                        .weight
                        .val()
                        .transpose()
                        .reshape([classes, features, 1, 1])
                        .detach(),
                );
                conv.bias = linear.bias;
                Classifier::PoolConv(conv)
            }
        };
        Head {
            dropout: DropoutConfig::new(dropout).init(),
            fc,
        }
    }

    /// Feature map `[N, C, H, W]` to logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match &self.fc {
            Classifier::Linear(fc) => fc.forward(self.dropout.forward(global_avg_pool(x))),
            Classifier::Nin(conv) => global_avg_pool(conv2d(conv, self.dropout.forward(x))),
            Classifier::PoolConv(conv) => {
                let pooled = self.dropout.forward(global_avg_pool(x));
                let [n, c] = pooled.dims();
                let y = conv2d(conv, pooled.reshape([n, c, 1, 1]));
                let [_, classes, _, _] = y.dims();
                y.reshape([n, classes])
            }
        }
    }

    /// Records the head and returns `[classes, 1, 1]`.
    pub fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        match &self.fc {
            Classifier::Linear(fc) => {
                s.push(join(prefix, "pool"), "GlobalAvgPool", vec![input[0]], 0, 0);
                let out = s.linear(join(prefix, "fc"), fc, input[0])?;
                Ok([out, 1, 1])
            }
            Classifier::Nin(conv) => {
                let y = s.conv2d(join(prefix, "fc"), conv, input)?;
                s.push(join(prefix, "pool"), "GlobalAvgPool", vec![y[0]], 0, 0);
                Ok([y[0], 1, 1])
            }
            Classifier::PoolConv(conv) => {
                s.push(join(prefix, "pool"), "GlobalAvgPool", vec![input[0]], 0, 0);
                let y = s.conv2d(join(prefix, "fc"), conv, [input[0], 1, 1])?;
                // The logits come out flat, as from the linear head.
                if let Some(row) = s.layers.last_mut() {
                    row.output = vec![y[0]];
                }
                Ok(y)
            }
        }
    }
}

impl Trace for Head {
    /// Dropout is the identity at inference; the logits come out flattened, `[N, classes]`.
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let pooled = |g: &mut Graph, x| {
            let x = g.global_avg_pool(&join(prefix, "pool"), x);
            g.flatten(&join(prefix, "flatten"), x)
        };
        match &self.fc {
            Classifier::Linear(fc) => {
                let x = pooled(g, x);
                g.linear(&join(prefix, "fc"), fc, x)
            }
            Classifier::Nin(conv) => {
                let x = g.conv(&join(prefix, "fc"), conv, x);
                pooled(g, x)
            }
            Classifier::PoolConv(conv) => {
                let x = g.global_avg_pool(&join(prefix, "pool"), x);
                let x = g.conv(&join(prefix, "fc"), conv, x);
                g.flatten(&join(prefix, "flatten"), x)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;
    use burn::tensor::Distribution;

    #[test]
    fn both_heads_give_logits_of_the_class_count() {
        let d = Device::default();
        let x = Tensor::<4>::random([3, 64, 5, 5], Distribution::Default, &d);
        for kind in [HeadKind::Linear, HeadKind::Nin, HeadKind::PoolConv] {
            let head = Head::new(kind, 64, 10, 0.0, &d);
            assert_eq!(head.forward(x.clone()).dims(), [3, 10]);
            assert_eq!(count_trainable(&head), 64 * 10 + 10);
            let mut s = Summary::default();
            assert_eq!(
                head.summarize("head", [64, 5, 5], &mut s).unwrap(),
                [10, 1, 1]
            );
            assert_eq!(s.params(), 650);
        }
    }
}
