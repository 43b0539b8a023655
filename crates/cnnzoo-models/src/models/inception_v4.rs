//! Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2016), timm's layouts: a deep stem
//! of mixed modules, then stages of Inception modules (v4) or of scaled residual Inception
//! blocks (Inception-ResNet-v2) separated by reduction modules, GAP head.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::blocks::inception::{Gated, Gates};
use crate::blocks::inception_v4::{
    FourBranch, InceptionResBlock, Mixed3a, Mixed4a, Mixed5a, Mixed7a, Reduction35, ReductionB,
    ResidualInception, V4InceptionC,
};
use crate::blocks::{ConvBnAct, ConvBnActConfig, Head, Pool2d};
use crate::graph::{Graph, Trace, Value};
use crate::models::inception::InceptionConfig;
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// A step of these networks' feature path: it runs, reports SE gates, summarises and traces.
trait Stage: Gated + Summarize + Trace {}
impl<T: Gated + Summarize + Trace> Stage for T {}

/// A 3x3 / 2 max pool between stem convolutions.
struct StemPool;

impl Gated for StemPool {
    fn forward_gated(&self, x: Tensor<4>, _: &str, _: &mut Gates) -> Tensor<4> {
        Pool2d::max(3, 2, 0).forward(x)
    }
}

impl Summarize for StemPool {
    fn summarize(
        &self,
        prefix: &str,
        x: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        Pool2d::max(3, 2, 0).summarize(prefix.to_string(), x, s)
    }
}

impl Trace for StemPool {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        Pool2d::max(3, 2, 0).trace(prefix, x, g)
    }
}

/// Runs `stages` in order, pushing SE gates by stage name.
fn run(stages: &[(String, &dyn Stage)], x: Tensor<4>, gates: &mut Gates) -> Tensor<4> {
    stages
        .iter()
        .fold(x, |x, (name, s)| s.forward_gated(x, name, gates))
}

fn summarize_all(
    stages: &[(String, &dyn Stage)],
    prefix: &str,
    x: FeatureShape,
    s: &mut Summary,
) -> Result<FeatureShape, ShapeError> {
    stages
        .iter()
        .try_fold(x, |x, (name, st)| st.summarize(&join(prefix, name), x, s))
}

fn trace_stages(stages: &[(String, &dyn Stage)], prefix: &str, x: Value, g: &mut Graph) -> Value {
    stages
        .iter()
        .fold(x, |x, (name, st)| st.trace(&join(prefix, name), x, g))
}

fn named<'a, T: Stage>(name: &str, items: &'a [T]) -> Vec<(String, &'a dyn Stage)> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("{name}.{i}"), m as &dyn Stage))
        .collect()
}

/// Implements [`Summarize`] and [`Trace`] for a network from its `stages()` and `head`.
macro_rules! stage_net {
    ($net:ty) => {
        impl Summarize for $net {
            fn summarize(
                &self,
                p: &str,
                input: FeatureShape,
                s: &mut Summary,
            ) -> Result<FeatureShape, ShapeError> {
                let x = summarize_all(&self.stages(), p, input, s)?;
                self.head.summarize(&join(p, "head"), x, s)
            }
        }

        impl Trace for $net {
            fn trace(&self, p: &str, x: Value, g: &mut Graph) -> Value {
                let x = trace_stages(&self.stages(), p, x, g);
                self.head.trace(&join(p, "head"), x, g)
            }
        }
    };
}

impl InceptionConfig {
    /// Builds Inception-v4.
    pub fn init_inception_v4(&self, device: &Device) -> InceptionV4 {
        let o = self.options();
        let sq = |i, c, k, stride, pad| -> ConvBnActConfig {
            o.unit(i, c, [k, k])
                .with_stride(stride)
                .with_padding(Some([pad, pad]))
        };
        InceptionV4 {
            stem: vec![
                sq(self.in_channels, 32, 3, 2, 0).init(device),
                sq(32, 32, 3, 1, 0).init(device),
                sq(32, 64, 3, 1, 1).init(device),
            ],
            mixed_3a: Mixed3a::new(&o, device),
            mixed_4a: Mixed4a::new(&o, device),
            mixed_5a: Mixed5a::new(&o, device),
            inception_a: (0..4)
                .map(|_| FourBranch::inception_a(&o, device))
                .collect(),
            reduction_a: Reduction35::reduction_a(&o, device),
            inception_b: (0..7)
                .map(|_| FourBranch::inception_b(&o, device))
                .collect(),
            reduction_b: ReductionB::new(&o, device),
            inception_c: (0..3).map(|_| V4InceptionC::new(&o, device)).collect(),
            head: Head::new(self.head, 1536, self.num_classes, self.dropout, device),
        }
    }

    /// Builds Inception-ResNet-v2.
    pub fn init_inception_resnet_v2(&self, device: &Device) -> InceptionResNetV2 {
        let o = self.options();
        let sq = |i, c, k, stride, pad| -> ConvBnActConfig {
            o.unit(i, c, [k, k])
                .with_stride(stride)
                .with_padding(Some([pad, pad]))
        };
        let blocks = |kind, n, scale| {
            (0..n)
                .map(|_| InceptionResBlock::new(kind, scale, true, &o, device))
                .collect()
        };
        InceptionResNetV2 {
            conv2d_1a: sq(self.in_channels, 32, 3, 2, 0).init(device),
            conv2d_2a: sq(32, 32, 3, 1, 0).init(device),
            conv2d_2b: sq(32, 64, 3, 1, 1).init(device),
            conv2d_3b: sq(64, 80, 1, 1, 0).init(device),
            conv2d_4a: sq(80, 192, 3, 1, 0).init(device),
            mixed_5b: FourBranch::mixed_5b(&o, device),
            repeat: blocks(ResidualInception::A, 10, 0.17),
            mixed_6a: Reduction35::mixed_6a(&o, device),
            repeat_1: blocks(ResidualInception::B, 20, 0.10),
            mixed_7a: Mixed7a::new(&o, device),
            repeat_2: blocks(ResidualInception::C, 9, 0.20),
            block8: InceptionResBlock::new(ResidualInception::C, 1.0, false, &o, device),
            conv2d_7b: sq(2080, 1536, 1, 1, 0).init(device),
            head: Head::new(self.head, 1536, self.num_classes, self.dropout, device),
        }
    }
}

/// Inception-v4 (timm's `features.0` ... `features.21` under stage names).
#[derive(Module, Debug)]
pub struct InceptionV4 {
    /// 3x3 / 2, 3x3, 3x3 convolutions (`features.0-2`).
    pub stem: Vec<ConvBnAct>,
    /// `features.3`.
    pub mixed_3a: Mixed3a,
    /// `features.4`.
    pub mixed_4a: Mixed4a,
    /// `features.5`.
    pub mixed_5a: Mixed5a,
    /// 4 x Inception-A, 35x35 (`features.6-9`).
    pub inception_a: Vec<FourBranch>,
    /// `features.10`.
    pub reduction_a: Reduction35,
    /// 7 x Inception-B, 17x17 (`features.11-17`).
    pub inception_b: Vec<FourBranch>,
    /// `features.18`.
    pub reduction_b: ReductionB,
    /// 3 x Inception-C, 8x8 (`features.19-21`).
    pub inception_c: Vec<V4InceptionC>,
    /// Classifier head (timm's `last_linear`).
    pub head: Head,
}

impl InceptionV4 {
    fn stages(&self) -> Vec<(String, &dyn Stage)> {
        let mut s = named("stem", &self.stem);
        s.push(("mixed_3a".into(), &self.mixed_3a));
        s.push(("mixed_4a".into(), &self.mixed_4a));
        s.push(("mixed_5a".into(), &self.mixed_5a));
        s.extend(named("inception_a", &self.inception_a));
        s.push(("reduction_a".into(), &self.reduction_a));
        s.extend(named("inception_b", &self.inception_b));
        s.push(("reduction_b".into(), &self.reduction_b));
        s.extend(named("inception_c", &self.inception_c));
        s
    }

    /// Logits, pushing each module's SE gates (if any) to `gates`.
    pub fn forward_gated(&self, x: Tensor<4>, gates: &mut Gates) -> Tensor<2> {
        self.head.forward(run(&self.stages(), x, gates))
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_gated(x, &mut Vec::new())
    }
}

stage_net!(InceptionV4);

/// Inception-ResNet-v2 (timm's names).
#[derive(Module, Debug)]
pub struct InceptionResNetV2 {
    /// 3x3 / 2.
    pub conv2d_1a: ConvBnAct,
    /// 3x3.
    pub conv2d_2a: ConvBnAct,
    /// 3x3, padded; a 3x3 / 2 max pool follows.
    pub conv2d_2b: ConvBnAct,
    /// 1x1.
    pub conv2d_3b: ConvBnAct,
    /// 3x3; a 3x3 / 2 max pool follows.
    pub conv2d_4a: ConvBnAct,
    /// 35x35 mixed module to 320 channels.
    pub mixed_5b: FourBranch,
    /// 10 x Block35 (scale 0.17).
    pub repeat: Vec<InceptionResBlock>,
    /// Reduction to 17x17, 1088 channels.
    pub mixed_6a: Reduction35,
    /// 20 x Block17 (scale 0.10).
    pub repeat_1: Vec<InceptionResBlock>,
    /// Reduction to 8x8, 2080 channels.
    pub mixed_7a: Mixed7a,
    /// 9 x Block8 (scale 0.20).
    pub repeat_2: Vec<InceptionResBlock>,
    /// The last Block8: scale 1, no ReLU.
    pub block8: InceptionResBlock,
    /// 1x1 to 1536.
    pub conv2d_7b: ConvBnAct,
    /// Classifier head (timm's `classif`).
    pub head: Head,
}

impl InceptionResNetV2 {
    fn stages(&self) -> Vec<(String, &dyn Stage)> {
        let mut s: Vec<(String, &dyn Stage)> = vec![
            ("conv2d_1a".into(), &self.conv2d_1a),
            ("conv2d_2a".into(), &self.conv2d_2a),
            ("conv2d_2b".into(), &self.conv2d_2b),
            ("maxpool_3a".into(), &StemPool),
            ("conv2d_3b".into(), &self.conv2d_3b),
            ("conv2d_4a".into(), &self.conv2d_4a),
            ("maxpool_5a".into(), &StemPool),
            ("mixed_5b".into(), &self.mixed_5b),
        ];
        s.extend(named("repeat", &self.repeat));
        s.push(("mixed_6a".into(), &self.mixed_6a));
        s.extend(named("repeat_1", &self.repeat_1));
        s.push(("mixed_7a".into(), &self.mixed_7a));
        s.extend(named("repeat_2", &self.repeat_2));
        s.push(("block8".into(), &self.block8));
        s.push(("conv2d_7b".into(), &self.conv2d_7b));
        s
    }

    /// Logits, pushing each module's SE gates (if any) to `gates`.
    pub fn forward_gated(&self, x: Tensor<4>, gates: &mut Gates) -> Tensor<2> {
        self.head.forward(run(&self.stages(), x, gates))
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_gated(x, &mut Vec::new())
    }
}

stage_net!(InceptionResNetV2);
