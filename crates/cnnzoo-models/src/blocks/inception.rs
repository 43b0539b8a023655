//! Inception modules: parallel 1x1 / 3x3 / 5x5 / pooling branches with 1x1 reductions,
//! concatenated along channels. GoogLeNet's module (torchvision's layout, with BatchNorm) and
//! Inception-v3's modules A-E with its auxiliary head. Any module can end with an SE unit
//! (SE-Inception).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};

use super::activation::Activation;
use super::conv_bn_act::{ConvBnAct, ConvBnActConfig, Norm};
use super::pool::{Pool2d, global_avg_pool};
use super::squeeze_excite::{SeSettings, SqueezeExcite};
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Options shared by every conv unit of an Inception network.
#[derive(Debug, Clone, PartialEq)]
pub struct InceptionOptions {
    /// The non-linearity.
    pub act: Activation,
    /// The normalisation.
    pub norm: Norm,
    /// BatchNorm epsilon (torchvision: 1e-3).
    pub bn_eps: f64,
    /// SE unit after each module (SE-Inception), if any.
    pub se: Option<SeSettings>,
}

impl Default for InceptionOptions {
    fn default() -> Self {
        Self {
            act: Activation::Relu,
            norm: Norm::BatchNorm,
            bn_eps: 1e-3,
            se: None,
        }
    }
}

impl InceptionOptions {
    /// torchvision's `BasicConv2d`: conv (same padding at stride 1), BN, activation.
    pub fn unit(&self, i: usize, o: usize, kernel: [usize; 2]) -> ConvBnActConfig {
        ConvBnActConfig::new(i, o, kernel)
            .with_norm(self.norm)
            .with_act(Some(self.act))
            .with_bn_eps(self.bn_eps)
    }

    /// A square unit with no padding (the "valid" convolutions of Inception-v3).
    pub fn valid(&self, i: usize, o: usize, k: usize, stride: usize) -> ConvBnActConfig {
        self.unit(i, o, [k, k])
            .with_stride(stride)
            .with_padding(Some([0, 0]))
    }

    pub(crate) fn se(&self, channels: usize, device: &Device) -> Option<SqueezeExcite> {
        self.se.as_ref().map(|se| se.unit(channels).init(device))
    }
}

/// One branch of a module, from the module's input to its part (or parts) of the
/// concatenation: a pooling, then conv units in sequence, then, for a forked branch, arms that
/// each take that output and give a part of their own (Inception-v3's E: a 1x3 and a 3x1 side
/// by side). The same description drives both [`forward_branches`] and
/// [`summarize_branches`], so what runs and what the summary lists cannot disagree.
pub(crate) struct Branch<'a> {
    /// A pooling first, with its name in the summary.
    pub(crate) pool: Option<(Pool2d, String)>,
    /// Conv units in sequence, each with its name (the weight files' key).
    pub(crate) units: Vec<(String, &'a ConvBnAct)>,
    /// Arms after the units; none means the units' output is the branch's one part.
    pub(crate) arms: Vec<(String, &'a ConvBnAct)>,
}

impl<'a> Branch<'a> {
    /// A single unit.
    pub(crate) fn unit(name: &str, unit: &'a ConvBnAct) -> Self {
        Branch {
            pool: None,
            units: vec![(name.to_string(), unit)],
            arms: Vec::new(),
        }
    }

    /// Units in sequence, named `name.0`, `name.1`, ... (a `Vec` field's keys).
    pub(crate) fn chain(name: &str, units: &'a [ConvBnAct]) -> Self {
        Branch {
            pool: None,
            units: units
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("{name}.{i}"), u))
                .collect(),
            arms: Vec::new(),
        }
    }

    /// A pooling named `name`, alone.
    pub(crate) fn pool(name: &str, pool: Pool2d) -> Self {
        Branch {
            pool: Some((pool, name.to_string())),
            units: Vec::new(),
            arms: Vec::new(),
        }
    }

    /// This branch after a pooling named `name`.
    pub(crate) fn after_pool(mut self, name: &str, pool: Pool2d) -> Self {
        self.pool = Some((pool, name.to_string()));
        self
    }

    /// This branch forked into `arms`.
    pub(crate) fn fork(mut self, arms: [(&str, &'a ConvBnAct); 2]) -> Self {
        self.arms = arms.map(|(n, u)| (n.to_string(), u)).to_vec();
        self
    }
}

/// Runs the branches on `x`, concatenates their parts and applies the SE unit, if any.
pub(crate) fn forward_branches(
    branches: Vec<Branch>,
    se: &Option<SqueezeExcite>,
    x: Tensor<4>,
) -> Tensor<4> {
    let mut parts = Vec::new();
    for b in branches {
        let x = match &b.pool {
            Some((pool, _)) => pool.forward(x.clone()),
            None => x.clone(),
        };
        let y = b.units.iter().fold(x, |y, (_, u)| u.forward(y));
        if b.arms.is_empty() {
            parts.push(y);
        } else {
            parts.extend(b.arms.iter().map(|(_, a)| a.forward(y.clone())));
        }
    }
    finish(se, parts)
}

/// [`forward_branches`]'s shapes, parameters and MACs, layer by layer, under `prefix`.
pub(crate) fn summarize_branches(
    branches: Vec<Branch>,
    se: &Option<SqueezeExcite>,
    prefix: &str,
    x: FeatureShape,
    s: &mut Summary,
) -> Result<FeatureShape, ShapeError> {
    let mut parts = Vec::new();
    for b in branches {
        let mut y = x;
        if let Some((pool, name)) = &b.pool {
            y = pool.summarize(join(prefix, name), y, s)?;
        }
        for (name, u) in &b.units {
            y = u.summarize(&join(prefix, name), y, s)?;
        }
        if b.arms.is_empty() {
            parts.push(y);
        }
        for (name, a) in &b.arms {
            parts.push(a.summarize(&join(prefix, name), y, s)?);
        }
    }
    let y = trace_concat(prefix, &parts, s)?;
    trace_se(prefix, se, y, s)
}

/// [`forward_branches`] as graph operations under `prefix`.
pub(crate) fn trace_branches(
    branches: Vec<Branch>,
    se: &Option<SqueezeExcite>,
    prefix: &str,
    x: Value,
    g: &mut Graph,
) -> Value {
    let mut parts = Vec::new();
    for b in branches {
        let mut y = x;
        if let Some((pool, name)) = &b.pool {
            y = pool.trace(&join(prefix, name), y, g);
        }
        for (name, u) in &b.units {
            y = u.trace(&join(prefix, name), y, g);
        }
        if b.arms.is_empty() {
            parts.push(y);
        }
        for (name, a) in &b.arms {
            parts.push(a.trace(&join(prefix, name), y, g));
        }
    }
    let y = g.concat(&join(prefix, "concat"), parts);
    match se {
        Some(se) => se.trace(&join(prefix, "se"), y, g),
        None => y,
    }
}

/// SE gates `[N, C, 1, 1]` of a forward pass, by module name, in depth order.
pub type Gates = Vec<(String, Tensor<4>)>;

/// A module whose forward pass can report its SE unit's gates.
pub trait Gated {
    /// The output, with the SE unit's gates (if any) pushed to `gates` under `name`.
    fn forward_gated(&self, x: Tensor<4>, name: &str, gates: &mut Gates) -> Tensor<4>;
}

/// Implements `forward`, [`Gated`], [`Summarize`] and [`Trace`] for a module from its
/// `branches()`.
macro_rules! from_branches {
    ($module:ty) => {
        impl $module {
            /// Runs the branches and concatenates them (then the SE unit, if any).
            pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
                forward_branches(self.branches(), &self.se, x)
            }
        }

        impl Gated for $module {
            fn forward_gated(&self, x: Tensor<4>, name: &str, gates: &mut Gates) -> Tensor<4> {
                match &self.se {
                    Some(se) => {
                        let y = forward_branches(self.branches(), &None, x);
                        let g = se.gates(y.clone());
                        gates.push((name.to_string(), g.clone()));
                        y * g
                    }
                    None => self.forward(x),
                }
            }
        }

        impl Summarize for $module {
            fn summarize(
                &self,
                prefix: &str,
                x: FeatureShape,
                s: &mut Summary,
            ) -> Result<FeatureShape, ShapeError> {
                summarize_branches(self.branches(), &self.se, prefix, x, s)
            }
        }

        impl Trace for $module {
            fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
                trace_branches(self.branches(), &self.se, prefix, x, g)
            }
        }
    };
}

pub(crate) use from_branches;

impl Gated for ConvBnAct {
    /// A plain unit carries no SE unit.
    fn forward_gated(&self, x: Tensor<4>, _name: &str, _gates: &mut Gates) -> Tensor<4> {
        self.forward(x)
    }
}

/// Concatenates branch outputs, checking they agree spatially.
fn trace_concat(
    prefix: &str,
    shapes: &[FeatureShape],
    s: &mut Summary,
) -> Result<FeatureShape, ShapeError> {
    let [_, h, w] = shapes[0];
    if let Some(bad) = shapes.iter().find(|x| x[1] != h || x[2] != w) {
        return Err(ShapeError {
            layer: join(prefix, "concat"),
            reason: format!("branches disagree: {h}x{w} vs {}x{}", bad[1], bad[2]),
        });
    }
    let out = [shapes.iter().map(|x| x[0]).sum(), h, w];
    s.push(join(prefix, "concat"), "Concat", out.to_vec(), 0, 0);
    Ok(out)
}

fn finish(se: &Option<SqueezeExcite>, branches: Vec<Tensor<4>>) -> Tensor<4> {
    let y = Tensor::cat(branches, 1);
    match se {
        Some(se) => se.forward(y),
        None => y,
    }
}

fn trace_se(
    prefix: &str,
    se: &Option<SqueezeExcite>,
    x: FeatureShape,
    s: &mut Summary,
) -> Result<FeatureShape, ShapeError> {
    match se {
        Some(se) => se.summarize(&join(prefix, "se"), x, s),
        None => Ok(x),
    }
}

/// GoogLeNet's Inception module (torchvision layout; its "5x5" branch uses a 3x3 kernel, as
/// torchvision's weights do).
#[derive(Module, Debug)]
pub struct InceptionModule {
    /// 1x1 branch.
    pub branch1: ConvBnAct,
    /// 1x1 reduce, 3x3.
    pub branch2: Vec<ConvBnAct>,
    /// 1x1 reduce, 3x3 (the "5x5" branch).
    pub branch3: Vec<ConvBnAct>,
    /// 3x3 max pool (stride 1), 1x1 projection.
    pub branch4: ConvBnAct,
    /// The pool of branch 4.
    #[module(skip)]
    pub pool: Pool2d,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionModule {
    /// torchvision's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`.
    pub fn new(input: usize, ch: [usize; 6], o: &InceptionOptions, device: &Device) -> Self {
        let [c1, c3r, c3, c5r, c5, pp] = ch;
        Self {
            branch1: o.unit(input, c1, [1, 1]).init(device),
            branch2: vec![
                o.unit(input, c3r, [1, 1]).init(device),
                o.unit(c3r, c3, [3, 3]).init(device),
            ],
            branch3: vec![
                o.unit(input, c5r, [1, 1]).init(device),
                o.unit(c5r, c5, [3, 3]).init(device),
            ],
            branch4: o.unit(input, pp, [1, 1]).init(device),
            pool: Pool2d::max(3, 1, 1).ceil(),
            se: o.se(c1 + c3 + c5 + pp, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch1", &self.branch1),
            Branch::chain("branch2", &self.branch2),
            Branch::chain("branch3", &self.branch3),
            Branch::unit("branch4", &self.branch4).after_pool("branch4.pool", self.pool),
        ]
    }
}

from_branches!(InceptionModule);

/// Inception-v3 module A (35x35): 1x1, 1x1-5x5, 1x1-3x3-3x3, avgpool-1x1.
#[derive(Module, Debug)]
pub struct InceptionA {
    /// 1x1 branch.
    pub branch1x1: ConvBnAct,
    /// 1x1 -> 5x5 branch.
    pub branch5x5: Vec<ConvBnAct>,
    /// 1x1 -> 3x3 -> 3x3 branch.
    pub branch3x3dbl: Vec<ConvBnAct>,
    /// avg pool -> 1x1 branch.
    pub branch_pool: ConvBnAct,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionA {
    /// torchvision's `InceptionA(in_channels, pool_features)`.
    pub fn new(input: usize, pool_features: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch1x1: o.unit(input, 64, [1, 1]).init(device),
            branch5x5: vec![
                o.unit(input, 48, [1, 1]).init(device),
                o.unit(48, 64, [5, 5]).init(device),
            ],
            branch3x3dbl: vec![
                o.unit(input, 64, [1, 1]).init(device),
                o.unit(64, 96, [3, 3]).init(device),
                o.unit(96, 96, [3, 3]).init(device),
            ],
            branch_pool: o.unit(input, pool_features, [1, 1]).init(device),
            se: o.se(224 + pool_features, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch1x1", &self.branch1x1),
            Branch::chain("branch5x5", &self.branch5x5),
            Branch::chain("branch3x3dbl", &self.branch3x3dbl),
            Branch::unit("branch_pool", &self.branch_pool)
                .after_pool("branch_pool.pool", Pool2d::avg(3, 1, 1)),
        ]
    }
}

from_branches!(InceptionA);

/// Inception-v3 module B (35x35 -> 17x17 reduction): strided 3x3, 1x1-3x3-3x3/2, max pool.
#[derive(Module, Debug)]
pub struct InceptionB {
    /// 3x3 / 2 branch.
    pub branch3x3: ConvBnAct,
    /// 1x1 -> 3x3 -> 3x3 / 2 branch.
    pub branch3x3dbl: Vec<ConvBnAct>,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionB {
    /// torchvision's `InceptionB(in_channels)`.
    pub fn new(input: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch3x3: o.valid(input, 384, 3, 2).init(device),
            branch3x3dbl: vec![
                o.unit(input, 64, [1, 1]).init(device),
                o.unit(64, 96, [3, 3]).init(device),
                o.valid(96, 96, 3, 2).init(device),
            ],
            se: o.se(384 + 96 + input, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch3x3", &self.branch3x3),
            Branch::chain("branch3x3dbl", &self.branch3x3dbl),
            Branch::pool("branch_pool", Pool2d::max(3, 2, 0)),
        ]
    }
}

from_branches!(InceptionB);

/// Inception-v3 module C (17x17): factorised 7x7 convolutions (1x7 and 7x1).
#[derive(Module, Debug)]
pub struct InceptionC {
    /// 1x1 branch.
    pub branch1x1: ConvBnAct,
    /// 1x1 -> 1x7 -> 7x1 branch.
    pub branch7x7: Vec<ConvBnAct>,
    /// 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 branch.
    pub branch7x7dbl: Vec<ConvBnAct>,
    /// avg pool -> 1x1 branch.
    pub branch_pool: ConvBnAct,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionC {
    /// torchvision's `InceptionC(in_channels, channels_7x7)`.
    pub fn new(input: usize, c7: usize, o: &InceptionOptions, device: &Device) -> Self {
        let (h, v) = ([1, 7], [7, 1]);
        Self {
            branch1x1: o.unit(input, 192, [1, 1]).init(device),
            branch7x7: vec![
                o.unit(input, c7, [1, 1]).init(device),
                o.unit(c7, c7, h).init(device),
                o.unit(c7, 192, v).init(device),
            ],
            branch7x7dbl: vec![
                o.unit(input, c7, [1, 1]).init(device),
                o.unit(c7, c7, v).init(device),
                o.unit(c7, c7, h).init(device),
                o.unit(c7, c7, v).init(device),
                o.unit(c7, 192, h).init(device),
            ],
            branch_pool: o.unit(input, 192, [1, 1]).init(device),
            se: o.se(768, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch1x1", &self.branch1x1),
            Branch::chain("branch7x7", &self.branch7x7),
            Branch::chain("branch7x7dbl", &self.branch7x7dbl),
            Branch::unit("branch_pool", &self.branch_pool)
                .after_pool("branch_pool.pool", Pool2d::avg(3, 1, 1)),
        ]
    }
}

from_branches!(InceptionC);

/// Inception-v3 module D (17x17 -> 8x8 reduction).
#[derive(Module, Debug)]
pub struct InceptionD {
    /// 1x1 -> 3x3 / 2 branch.
    pub branch3x3: Vec<ConvBnAct>,
    /// 1x1 -> 1x7 -> 7x1 -> 3x3 / 2 branch.
    pub branch7x7x3: Vec<ConvBnAct>,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionD {
    /// torchvision's `InceptionD(in_channels)`.
    pub fn new(input: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch3x3: vec![
                o.unit(input, 192, [1, 1]).init(device),
                o.valid(192, 320, 3, 2).init(device),
            ],
            branch7x7x3: vec![
                o.unit(input, 192, [1, 1]).init(device),
                o.unit(192, 192, [1, 7]).init(device),
                o.unit(192, 192, [7, 1]).init(device),
                o.valid(192, 192, 3, 2).init(device),
            ],
            se: o.se(320 + 192 + input, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::chain("branch3x3", &self.branch3x3),
            Branch::chain("branch7x7x3", &self.branch7x7x3),
            Branch::pool("branch_pool", Pool2d::max(3, 2, 0)),
        ]
    }
}

from_branches!(InceptionD);

/// Inception-v3 module E (8x8): expanded filter banks (1x3 and 3x1 side by side).
#[derive(Module, Debug)]
pub struct InceptionE {
    /// 1x1 branch.
    pub branch1x1: ConvBnAct,
    /// 1x1 reduce of the 3x3 branch.
    pub branch3x3_1: ConvBnAct,
    /// 1x3 of the 3x3 branch.
    pub branch3x3_2a: ConvBnAct,
    /// 3x1 of the 3x3 branch.
    pub branch3x3_2b: ConvBnAct,
    /// 1x1 -> 3x3 of the double branch.
    pub branch3x3dbl: Vec<ConvBnAct>,
    /// 1x3 of the double branch.
    pub branch3x3dbl_3a: ConvBnAct,
    /// 3x1 of the double branch.
    pub branch3x3dbl_3b: ConvBnAct,
    /// avg pool -> 1x1 branch.
    pub branch_pool: ConvBnAct,
    /// SE-Inception unit, if any.
    pub se: Option<SqueezeExcite>,
}

impl InceptionE {
    /// torchvision's `InceptionE(in_channels)`.
    pub fn new(input: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            branch1x1: o.unit(input, 320, [1, 1]).init(device),
            branch3x3_1: o.unit(input, 384, [1, 1]).init(device),
            branch3x3_2a: o.unit(384, 384, [1, 3]).init(device),
            branch3x3_2b: o.unit(384, 384, [3, 1]).init(device),
            branch3x3dbl: vec![
                o.unit(input, 448, [1, 1]).init(device),
                o.unit(448, 384, [3, 3]).init(device),
            ],
            branch3x3dbl_3a: o.unit(384, 384, [1, 3]).init(device),
            branch3x3dbl_3b: o.unit(384, 384, [3, 1]).init(device),
            branch_pool: o.unit(input, 192, [1, 1]).init(device),
            se: o.se(2048, device),
        }
    }

    fn branches(&self) -> Vec<Branch<'_>> {
        vec![
            Branch::unit("branch1x1", &self.branch1x1),
            Branch::unit("branch3x3_1", &self.branch3x3_1).fork([
                ("branch3x3_2a", &self.branch3x3_2a),
                ("branch3x3_2b", &self.branch3x3_2b),
            ]),
            Branch::chain("branch3x3dbl", &self.branch3x3dbl).fork([
                ("branch3x3dbl_3a", &self.branch3x3dbl_3a),
                ("branch3x3dbl_3b", &self.branch3x3dbl_3b),
            ]),
            Branch::unit("branch_pool", &self.branch_pool)
                .after_pool("branch_pool.pool", Pool2d::avg(3, 1, 1)),
        ]
    }
}

from_branches!(InceptionE);

/// GoogLeNet's auxiliary classifier: 4x4 adaptive avg pool, 1x1 conv to 128, FC 1024, FC.
#[derive(Module, Debug)]
pub struct GoogLeNetAux {
    /// 1x1 conv to 128 channels.
    pub conv: ConvBnAct,
    /// 2048 -> 1024.
    pub fc1: Linear,
    /// 1024 -> classes.
    pub fc2: Linear,
    /// Dropout 0.7 between the FCs.
    pub dropout: Dropout,
}

impl GoogLeNetAux {
    /// torchvision's `InceptionAux(in_channels, num_classes)` of GoogLeNet.
    pub fn new(input: usize, classes: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            conv: o.unit(input, 128, [1, 1]).init(device),
            fc1: LinearConfig::new(2048, 1024).init(device),
            fc2: LinearConfig::new(1024, classes).init(device),
            dropout: DropoutConfig::new(0.7).init(),
        }
    }

    /// Auxiliary logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv.forward(adaptive_avg_pool2d(x, [4, 4]));
        let x: Tensor<2> = x.flatten(1, 3);
        let x = self.dropout.forward(relu(self.fc1.forward(x)));
        self.fc2.forward(x)
    }
}

impl Summarize for GoogLeNetAux {
    fn summarize(
        &self,
        p: &str,
        x: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let pooled = [x[0], 4, 4];
        s.push(join(p, "pool"), "AdaptiveAvgPool2d", pooled.to_vec(), 0, 0);
        let y = self.conv.summarize(&join(p, "conv"), pooled, s)?;
        let f = s.linear(join(p, "fc1"), &self.fc1, y.iter().product())?;
        let out = s.linear(join(p, "fc2"), &self.fc2, f)?;
        Ok([out, 1, 1])
    }
}

/// Inception-v3's auxiliary classifier: 5x5/3 avg pool, 1x1 to 128, 5x5 to 768, GAP, FC.
#[derive(Module, Debug)]
pub struct InceptionAux {
    /// 1x1 conv to 128 channels.
    pub conv0: ConvBnAct,
    /// 5x5 conv to 768 channels.
    pub conv1: ConvBnAct,
    /// 768 -> classes.
    pub fc: Linear,
}

impl InceptionAux {
    /// torchvision's `InceptionAux(in_channels, num_classes)` of Inception-v3.
    pub fn new(input: usize, classes: usize, o: &InceptionOptions, device: &Device) -> Self {
        Self {
            conv0: o.unit(input, 128, [1, 1]).init(device),
            conv1: o.valid(128, 768, 5, 1).init(device),
            fc: LinearConfig::new(768, classes).init(device),
        }
    }

    /// Auxiliary logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = Pool2d::avg(5, 3, 0).forward(x);
        let x = self.conv1.forward(self.conv0.forward(x));
        self.fc.forward(global_avg_pool(x))
    }
}

impl Summarize for InceptionAux {
    fn summarize(
        &self,
        p: &str,
        x: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = Pool2d::avg(5, 3, 0).summarize(join(p, "pool"), x, s)?;
        let x = self.conv0.summarize(&join(p, "conv0"), x, s)?;
        let x = self.conv1.summarize(&join(p, "conv1"), x, s)?;
        let out = s.linear(join(p, "fc"), &self.fc, x[0])?;
        Ok([out, 1, 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;
    use burn::tensor::Distribution;

    fn check<M: Summarize + Module>(m: &M, out: Tensor<4>, input: FeatureShape) {
        let mut s = Summary::default();
        let traced = m.summarize("m", input, &mut s).unwrap();
        let [_, c, h, w] = out.dims();
        assert_eq!(traced, [c, h, w]);
        assert_eq!(s.params(), count_trainable(m));
    }

    #[test]
    fn googlenet_module_concatenates_four_branches() {
        let d = Device::default();
        let o = InceptionOptions::default();
        let m = InceptionModule::new(192, [64, 96, 128, 16, 32, 32], &o, &d);
        let x = Tensor::<4>::random([1, 192, 7, 7], Distribution::Default, &d);
        let y = m.forward(x);
        assert_eq!(y.dims(), [1, 256, 7, 7]);
        check(&m, y, [192, 7, 7]);
    }

    #[test]
    fn v3_modules_have_torchvision_widths() {
        let d = Device::default();
        let o = InceptionOptions::default();
        let x = Tensor::<4>::random([1, 192, 9, 9], Distribution::Default, &d);
        let a = InceptionA::new(192, 32, &o, &d);
        let y = a.forward(x.clone());
        assert_eq!(y.dims(), [1, 256, 9, 9]);
        check(&a, y, [192, 9, 9]);
        let b = InceptionB::new(192, &o, &d);
        let y = b.forward(x.clone());
        assert_eq!(y.dims(), [1, 384 + 96 + 192, 4, 4]);
        check(&b, y, [192, 9, 9]);
        let c = InceptionC::new(192, 32, &o, &d);
        let y = c.forward(x.clone());
        assert_eq!(y.dims(), [1, 768, 9, 9]);
        check(&c, y, [192, 9, 9]);
        let dd = InceptionD::new(192, &o, &d);
        let y = dd.forward(x.clone());
        assert_eq!(y.dims(), [1, 320 + 192 + 192, 4, 4]);
        check(&dd, y, [192, 9, 9]);
        let e = InceptionE::new(192, &o, &d);
        let y = e.forward(x);
        assert_eq!(y.dims(), [1, 2048, 9, 9]);
        check(&e, y, [192, 9, 9]);
    }

    #[test]
    fn se_inception_adds_a_gate_after_the_module() {
        let d = Device::default();
        let o = InceptionOptions {
            se: Some(SeSettings::new()),
            ..Default::default()
        };
        let m = InceptionModule::new(32, [16, 8, 16, 8, 16, 16], &o, &d);
        assert!(m.se.is_some());
        let x = Tensor::<4>::random([2, 32, 5, 5], Distribution::Default, &d);
        let y = m.forward(x);
        check(&m, y, [32, 5, 5]);
    }

    #[test]
    fn aux_heads_give_logits() {
        let d = Device::default();
        let o = InceptionOptions::default();
        let aux = InceptionAux::new(768, 10, &o, &d);
        let y = aux.forward(Tensor::<4>::random(
            [2, 768, 17, 17],
            Distribution::Default,
            &d,
        ));
        assert_eq!(y.dims(), [2, 10]);
        let aux = GoogLeNetAux::new(512, 10, &o, &d);
        let y = aux.forward(Tensor::<4>::random(
            [2, 512, 14, 14],
            Distribution::Default,
            &d,
        ));
        assert_eq!(y.dims(), [2, 10]);
    }
}
