//! The modules of Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2016), timm's layout:
//! the stem's mixed modules, Inception-A/B/C and the reductions of v4, and the residual
//! Inception blocks (35x35, 17x17, 8x8) whose concatenated branches pass a biased 1x1
//! convolution, are scaled down (0.17, 0.10, 0.20) and added to the input.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use super::conv_bn_act::{ConvBnAct, ConvBnActConfig};
use super::inception::{
    Branch, Gated, Gates, InceptionOptions, forward_branches, from_branches, summarize_branches,
    trace_branches,
};
use super::layers::conv2d;
use super::pool::Pool2d;
use super::squeeze_excite::SqueezeExcite;
use crate::graph::{Graph, Trace, Value};
use crate::init::conv2d_kaiming;
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// timm's `ConvNormAct` of these nets: no padding unless given.
fn unit(
    o: &InceptionOptions,
    i: usize,
    c: usize,
    k: [usize; 2],
    pad: [usize; 2],
) -> ConvBnActConfig {
    o.unit(i, c, k).with_padding(Some(pad))
}

/// A square unit, padding `pad`, stride `stride`.
fn sq(
    o: &InceptionOptions,
    i: usize,
    c: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> ConvBnActConfig {
    unit(o, i, c, [k, k], [pad, pad]).with_stride(stride)
}

fn init(units: Vec<ConvBnActConfig>, device: &Device) -> Vec<ConvBnAct> {
    units.iter().map(|u| u.init(device)).collect()
}

/// 3x3 / 1 average pool, padding 1, padded positions not counted (timm's v4 and IR-v2).
fn avg_3x3() -> Pool2d {
    let mut p = Pool2d::avg(3, 1, 1);
    p.count_include_pad = false;
    p
}

/// 3x3 / 2 max pool without padding.
fn max_3x3_s2() -> Pool2d {
    Pool2d::max(3, 2, 0)
}

/// v4 stem, `features.3`: 3x3 / 2 max pool beside a 3x3 / 2 conv (64 -> 160).
#[derive(Module, Debug)]
pub struct Mixed3a {
    /// The convolution.
    pub conv: ConvBnAct,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl Mixed3a {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        Self {
            conv: sq(o, 64, 96, 3, 2, 0).init(device),
            se: o.se(160, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::pool("maxpool", max_3x3_s2()),
            Branch::unit("conv", &self.conv),
        ]
    }
}

from_branches!(Mixed3a);

/// v4 stem, `features.4`: 1x1-3x3 beside 1x1-1x7-7x1-3x3 (160 -> 192).
#[derive(Module, Debug)]
pub struct Mixed4a {
    /// 1x1 -> 3x3.
    pub branch0: Vec<ConvBnAct>,
    /// 1x1 -> 1x7 -> 7x1 -> 3x3.
    pub branch1: Vec<ConvBnAct>,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl Mixed4a {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch0: init(
                vec![sq(o, 160, 64, 1, 1, 0), sq(o, 64, 96, 3, 1, 0)],
                device,
            ),
            branch1: init(
                vec![
                    sq(o, 160, 64, 1, 1, 0),
                    unit(o, 64, 64, [1, 7], [0, 3]),
                    unit(o, 64, 64, [7, 1], [3, 0]),
                    sq(o, 64, 96, 3, 1, 0),
                ],
                device,
            ),
            se: o.se(192, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::chain("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
        ]
    }
}

from_branches!(Mixed4a);

/// v4 stem, `features.5`: 3x3 / 2 conv beside 3x3 / 2 max pool (192 -> 384).
#[derive(Module, Debug)]
pub struct Mixed5a {
    /// The convolution.
    pub conv: ConvBnAct,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl Mixed5a {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        Self {
            conv: sq(o, 192, 192, 3, 2, 0).init(device),
            se: o.se(384, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("conv", &self.conv),
            Branch::pool("maxpool", max_3x3_s2()),
        ]
    }
}

from_branches!(Mixed5a);

/// The four-branch module of both nets: 1x1 | 1x1 chain | 1x1 chain | average pool -> 1x1
/// (timm's `branch0` ... `branch3`, the pooled 1x1 at `branch3.1`): v4's Inception-A (35x35)
/// and Inception-B (17x17, factorised 7x7), Inception-ResNet-v2's Mixed_5b.
#[derive(Module, Debug)]
pub struct FourBranch {
    /// 1x1.
    pub branch0: ConvBnAct,
    /// 1x1 -> ...
    pub branch1: Vec<ConvBnAct>,
    /// 1x1 -> ...
    pub branch2: Vec<ConvBnAct>,
    /// The 1x1 after the average pool.
    pub branch3: ConvBnAct,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl FourBranch {
    fn build(
        o: &InceptionOptions,
        b0: ConvBnActConfig,
        b1: Vec<ConvBnActConfig>,
        b2: Vec<ConvBnActConfig>,
        b3: ConvBnActConfig,
        device: &Device,
    ) -> Self {
        let out = [&b0, &b3]
            .iter()
            .map(|u| u.out_channels)
            .chain(b1.last().map(|u| u.out_channels))
            .chain(b2.last().map(|u| u.out_channels))
            .sum();
        Self {
            branch0: b0.init(device),
            branch1: init(b1, device),
            branch2: init(b2, device),
            branch3: b3.init(device),
            se: o.se(out, device),
        }
    }

    /// v4 Inception-A (35x35, 384 -> 384): 1x1, 1x1-3x3, 1x1-3x3-3x3, pool-1x1.
    pub fn inception_a(o: &InceptionOptions, device: &Device) -> Self {
        Self::build(
            o,
            sq(o, 384, 96, 1, 1, 0),
            vec![sq(o, 384, 64, 1, 1, 0), sq(o, 64, 96, 3, 1, 1)],
            vec![
                sq(o, 384, 64, 1, 1, 0),
                sq(o, 64, 96, 3, 1, 1),
                sq(o, 96, 96, 3, 1, 1),
            ],
            sq(o, 384, 96, 1, 1, 0),
            device,
        )
    }

    /// v4 Inception-B (17x17, 1024 -> 1024): 1x1, 1x1-1x7-7x1, 1x1-7x1-1x7-7x1-1x7, pool-1x1.
    pub fn inception_b(o: &InceptionOptions, device: &Device) -> Self {
        let h = |i, c| unit(o, i, c, [1, 7], [0, 3]);
        let v = |i, c| unit(o, i, c, [7, 1], [3, 0]);
        Self::build(
            o,
            sq(o, 1024, 384, 1, 1, 0),
            vec![sq(o, 1024, 192, 1, 1, 0), h(192, 224), v(224, 256)],
            vec![
                sq(o, 1024, 192, 1, 1, 0),
                v(192, 192),
                h(192, 224),
                v(224, 224),
                h(224, 256),
            ],
            sq(o, 1024, 128, 1, 1, 0),
            device,
        )
    }

    /// Inception-ResNet-v2's Mixed_5b (35x35, 192 -> 320): 1x1, 1x1-5x5, 1x1-3x3-3x3,
    /// pool-1x1.
    pub fn mixed_5b(o: &InceptionOptions, device: &Device) -> Self {
        Self::build(
            o,
            sq(o, 192, 96, 1, 1, 0),
            vec![sq(o, 192, 48, 1, 1, 0), sq(o, 48, 64, 5, 1, 2)],
            vec![
                sq(o, 192, 64, 1, 1, 0),
                sq(o, 64, 96, 3, 1, 1),
                sq(o, 96, 96, 3, 1, 1),
            ],
            sq(o, 192, 64, 1, 1, 0),
            device,
        )
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
            Branch::chain("branch2", &self.branch2),
            Branch::unit("branch3", &self.branch3).after_pool("branch3.pool", avg_3x3()),
        ]
    }
}

from_branches!(FourBranch);

/// The 35x35 -> 17x17 reduction of both nets: 3x3 / 2 | 1x1-3x3-3x3 / 2 | 3x3 / 2 max pool;
/// v4's Reduction-A (384 -> 1024) and Inception-ResNet-v2's Mixed_6a (320 -> 1088).
#[derive(Module, Debug)]
pub struct Reduction35 {
    /// 3x3 / 2.
    pub branch0: ConvBnAct,
    /// 1x1 -> 3x3 -> 3x3 / 2.
    pub branch1: Vec<ConvBnAct>,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl Reduction35 {
    /// From `input` channels; `k`, `l`, `m`, `n`: the paper's filter counts (3x3 / 2; 1x1,
    /// 3x3, 3x3 / 2).
    fn build(
        o: &InceptionOptions,
        input: usize,
        [k, l, m, n]: [usize; 4],
        device: &Device,
    ) -> Self {
        Self {
            branch0: sq(o, input, n, 3, 2, 0).init(device),
            branch1: init(
                vec![
                    sq(o, input, k, 1, 1, 0),
                    sq(o, k, l, 3, 1, 1),
                    sq(o, l, m, 3, 2, 0),
                ],
                device,
            ),
            se: o.se(input + n + m, device),
        }
    }

    /// v4's Reduction-A (k, l, m, n = 192, 224, 256, 384).
    pub fn reduction_a(o: &InceptionOptions, device: &Device) -> Self {
        Self::build(o, 384, [192, 224, 256, 384], device)
    }

    /// Inception-ResNet-v2's Mixed_6a (k, l, m, n = 256, 256, 384, 384).
    pub fn mixed_6a(o: &InceptionOptions, device: &Device) -> Self {
        Self::build(o, 320, [256, 256, 384, 384], device)
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
            Branch::pool("branch2", max_3x3_s2()),
        ]
    }
}

from_branches!(Reduction35);

/// v4 Reduction-B (17x17 -> 8x8, 1024 -> 1536).
#[derive(Module, Debug)]
pub struct ReductionB {
    /// 1x1 -> 3x3 / 2.
    pub branch0: Vec<ConvBnAct>,
    /// 1x1 -> 1x7 -> 7x1 -> 3x3 / 2.
    pub branch1: Vec<ConvBnAct>,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl ReductionB {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch0: init(
                vec![sq(o, 1024, 192, 1, 1, 0), sq(o, 192, 192, 3, 2, 0)],
                device,
            ),
            branch1: init(
                vec![
                    sq(o, 1024, 256, 1, 1, 0),
                    unit(o, 256, 256, [1, 7], [0, 3]),
                    unit(o, 256, 320, [7, 1], [3, 0]),
                    sq(o, 320, 320, 3, 2, 0),
                ],
                device,
            ),
            se: o.se(1536, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::chain("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
            Branch::pool("branch2", max_3x3_s2()),
        ]
    }
}

from_branches!(ReductionB);

/// v4 Inception-C (8x8, 1536 -> 1536): expanded filter banks (1x3 and 3x1 side by side).
#[derive(Module, Debug)]
pub struct V4InceptionC {
    /// 1x1.
    pub branch0: ConvBnAct,
    /// 1x1 reduce of the second branch.
    pub branch1_0: ConvBnAct,
    /// Its 1x3 arm.
    pub branch1_1a: ConvBnAct,
    /// Its 3x1 arm.
    pub branch1_1b: ConvBnAct,
    /// 1x1 reduce of the third branch.
    pub branch2_0: ConvBnAct,
    /// Its 3x1.
    pub branch2_1: ConvBnAct,
    /// Its 1x3.
    pub branch2_2: ConvBnAct,
    /// Its 1x3 arm.
    pub branch2_3a: ConvBnAct,
    /// Its 3x1 arm.
    pub branch2_3b: ConvBnAct,
    /// The 1x1 after the average pool (timm's `branch3.1`).
    pub branch3: ConvBnAct,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl V4InceptionC {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        let h = |i, c| unit(o, i, c, [1, 3], [0, 1]).init(device);
        let v = |i, c| unit(o, i, c, [3, 1], [1, 0]).init(device);
        Self {
            branch0: sq(o, 1536, 256, 1, 1, 0).init(device),
            branch1_0: sq(o, 1536, 384, 1, 1, 0).init(device),
            branch1_1a: h(384, 256),
            branch1_1b: v(384, 256),
            branch2_0: sq(o, 1536, 384, 1, 1, 0).init(device),
            branch2_1: v(384, 448),
            branch2_2: h(448, 512),
            branch2_3a: h(512, 256),
            branch2_3b: v(512, 256),
            branch3: sq(o, 1536, 256, 1, 1, 0).init(device),
            se: o.se(1536, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch0", &self.branch0),
            Branch::unit("branch1_0", &self.branch1_0).fork([
                ("branch1_1a", &self.branch1_1a),
                ("branch1_1b", &self.branch1_1b),
            ]),
            Branch {
                pool: None,
                units: vec![
                    ("branch2_0".to_string(), &self.branch2_0),
                    ("branch2_1".to_string(), &self.branch2_1),
                    ("branch2_2".to_string(), &self.branch2_2),
                ],
                arms: Vec::new(),
            }
            .fork([
                ("branch2_3a", &self.branch2_3a),
                ("branch2_3b", &self.branch2_3b),
            ]),
            Branch::unit("branch3", &self.branch3).after_pool("branch3.pool", avg_3x3()),
        ]
    }
}

from_branches!(V4InceptionC);

/// Which residual Inception block of Inception-ResNet-v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidualInception {
    /// Block35 (35x35, 320 channels, scale 0.17).
    A,
    /// Block17 (17x17, 1088 channels, scale 0.10).
    B,
    /// Block8 (8x8, 2080 channels, scale 0.20).
    C,
}

/// A residual Inception block: `act(x + scale * conv2d(concat(branches(x))))`. The scale
/// (0.1-0.3 in the paper) keeps the very wide residuals from destabilising training.
#[derive(Module, Debug)]
pub struct InceptionResBlock {
    /// 1x1.
    pub branch0: ConvBnAct,
    /// The second branch.
    pub branch1: Vec<ConvBnAct>,
    /// The third branch (Block35 only; empty otherwise).
    pub branch2: Vec<ConvBnAct>,
    /// The biased 1x1 back to the block's width (no BatchNorm).
    pub conv2d: Conv2d,
    /// The residual's scale.
    #[module(skip)]
    pub scale: f64,
    /// ReLU after the addition (all but the last Block8).
    #[module(skip)]
    pub relu: bool,
}

impl InceptionResBlock {
    /// Builds a block of `kind` with residual scale `scale`, ReLU after the addition or not.
    pub fn new(
        kind: ResidualInception,
        scale: f64,
        relu: bool,
        o: &InceptionOptions,
        device: &Device,
    ) -> Self {
        let (c, b0, b1, b2, cat) = match kind {
            ResidualInception::A => (
                320,
                sq(o, 320, 32, 1, 1, 0),
                vec![sq(o, 320, 32, 1, 1, 0), sq(o, 32, 32, 3, 1, 1)],
                vec![
                    sq(o, 320, 32, 1, 1, 0),
                    sq(o, 32, 48, 3, 1, 1),
                    sq(o, 48, 64, 3, 1, 1),
                ],
                128,
            ),
            ResidualInception::B => (
                1088,
                sq(o, 1088, 192, 1, 1, 0),
                vec![
                    sq(o, 1088, 128, 1, 1, 0),
                    unit(o, 128, 160, [1, 7], [0, 3]),
                    unit(o, 160, 192, [7, 1], [3, 0]),
                ],
                Vec::new(),
                384,
            ),
            ResidualInception::C => (
                2080,
                sq(o, 2080, 192, 1, 1, 0),
                vec![
                    sq(o, 2080, 192, 1, 1, 0),
                    unit(o, 192, 224, [1, 3], [0, 1]),
                    unit(o, 224, 256, [3, 1], [1, 0]),
                ],
                Vec::new(),
                448,
            ),
        };
        Self {
            branch0: b0.init(device),
            branch1: init(b1, device),
            branch2: init(b2, device),
            conv2d: conv2d_kaiming(&Conv2dConfig::new([cat, c], [1, 1]), device),
            scale,
            relu,
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        let mut b = vec![
            Branch::unit("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
        ];
        if !self.branch2.is_empty() {
            b.push(Branch::chain("branch2", &self.branch2));
        }
        b
    }

    /// The up-projection with the residual scale folded into its weights and bias.
    fn scaled_conv(&self) -> Conv2d {
        let mut c = self.conv2d.clone();
        c.weight = Param::from_tensor(self.conv2d.weight.val() * self.scale);
        c.bias = self
            .conv2d
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val() * self.scale));
        c
    }

    /// `act(x + scale * conv2d(concat(branches(x))))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d(
            &self.conv2d,
            forward_branches(self.branches(), &None, x.clone()),
        );
        let y = y * self.scale + x;
        if self.relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }
}

impl Gated for InceptionResBlock {
    /// These blocks carry no SE unit.
    fn forward_gated(&self, x: Tensor<4>, _name: &str, _gates: &mut Gates) -> Tensor<4> {
        self.forward(x)
    }
}

impl Summarize for InceptionResBlock {
    fn summarize(
        &self,
        prefix: &str,
        x: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let y = summarize_branches(self.branches(), &None, prefix, x, s)?;
        let y = s.conv2d(join(prefix, "conv2d"), &self.conv2d, y)?;
        if y != x {
            return Err(ShapeError {
                layer: join(prefix, "conv2d"),
                reason: format!("residual {y:?} does not match the input {x:?}"),
            });
        }
        Ok(y)
    }
}

impl Trace for InceptionResBlock {
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let y = trace_branches(self.branches(), &None, prefix, x, g);
        let y = g.conv(&join(prefix, "conv2d"), &self.scaled_conv(), y);
        let y = g.add(&join(prefix, "add"), y, x);
        if self.relu {
            g.activation(&join(prefix, "relu"), crate::graph::Activation::Relu, y)
        } else {
            y
        }
    }
}

/// Inception-ResNet-v2's Mixed_7a (17x17 -> 8x8, 1088 -> 2080).
#[derive(Module, Debug)]
pub struct Mixed7a {
    /// 1x1 -> 3x3 / 2.
    pub branch0: Vec<ConvBnAct>,
    /// 1x1 -> 3x3 / 2.
    pub branch1: Vec<ConvBnAct>,
    /// 1x1 -> 3x3 -> 3x3 / 2.
    pub branch2: Vec<ConvBnAct>,
    /// SE unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl Mixed7a {
    /// Builds the module.
    pub fn new(o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch0: init(
                vec![sq(o, 1088, 256, 1, 1, 0), sq(o, 256, 384, 3, 2, 0)],
                device,
            ),
            branch1: init(
                vec![sq(o, 1088, 256, 1, 1, 0), sq(o, 256, 288, 3, 2, 0)],
                device,
            ),
            branch2: init(
                vec![
                    sq(o, 1088, 256, 1, 1, 0),
                    sq(o, 256, 288, 3, 1, 1),
                    sq(o, 288, 320, 3, 2, 0),
                ],
                device,
            ),
            se: o.se(2080, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::chain("branch0", &self.branch0),
            Branch::chain("branch1", &self.branch1),
            Branch::chain("branch2", &self.branch2),
            Branch::pool("branch3", max_3x3_s2()),
        ]
    }
}

from_branches!(Mixed7a);
