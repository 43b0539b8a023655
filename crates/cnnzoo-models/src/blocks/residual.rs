//! Residual blocks: y = act(F(x) + shortcut(x)).
//!
//! One block type covers the basic block (3x3, 3x3), the bottleneck (1x1 reduce, 3x3 grouped,
//! 1x1 expand; ResNeXt through cardinality and base width), SE at any of the four positions,
//! the three shortcut options of the ResNet paper and the plain (no-shortcut) twin, the
//! pre-activation order of the identity-mappings paper (y = F(x) + x, nothing after the
//! addition), ResNet-D's average-pool shortcut, WRN's dropout between the convolutions and
//! stochastic depth.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::conv_bn_act::{ConvBnAct, ConvBnActConfig, Norm, UnitTap, no_tap};
use super::drop_path::DropPath;
use super::layers::{conv_add_relu, norm_act};
use super::pool::Pool2d;
use super::squeeze_excite::{SePosition, SeSettings, SqueezeExcite};
use crate::graph::{Graph, Trace, Value};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Which residual function F a block computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// 3x3 -> 3x3, output width = planes (ResNet-18/34, CIFAR ResNets).
    Basic,
    /// 1x1 -> 3x3 (grouped) -> 1x1, output width = 4 x planes (ResNet-50+, ResNeXt).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// How the shortcut crosses a change of shape (the options of the ResNet paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShortcutKind {
    /// Option A: identity; where the shape changes, strided subsampling and zero-padded
    /// channels (parameter-free; CIFAR ResNets).
    ZeroPad,
    /// Option B: identity; a 1x1 conv + BN projection only where the shape changes.
    Projection,
    /// Option C: a 1x1 conv + BN projection on every block.
    AllProjection,
    /// No shortcut at all: the plain network of the degradation experiment.
    None,
}

impl std::str::FromStr for ShortcutKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "a" | "zeropad" | "zero-pad" => Ok(ShortcutKind::ZeroPad),
            "b" | "projection" => Ok(ShortcutKind::Projection),
            "c" | "all-projection" | "allprojection" => Ok(ShortcutKind::AllProjection),
            "none" | "plain" => Ok(ShortcutKind::None),
            other => Err(format!(
                "unknown shortcut '{other}' (expected A, B, C or none)"
            )),
        }
    }
}

/// What a built block does on its shortcut path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Plain block: no addition.
    None,
    /// x itself.
    Identity,
    /// x subsampled by `stride` with `extra_channels` zero channels appended.
    ZeroPad {
        /// Spatial subsampling step.
        stride: usize,
        /// Zero channels appended after the input's channels.
        extra_channels: usize,
    },
    /// The `downsample` projection (1x1 conv + BN).
    Projection,
}

/// Configuration of a [`ResidualBlock`].
#[derive(Config, Debug)]
pub struct ResidualBlockConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Planes: the block outputs `planes * expansion` channels.
    pub planes: usize,
    /// Basic or bottleneck.
    pub kind: BlockKind,
    /// Stride of the block (on the 3x3 convolution, and on the shortcut).
    #[config(default = 1)]
    pub stride: usize,
    /// Groups of the bottleneck's 3x3 (ResNeXt cardinality).
    #[config(default = 1)]
    pub cardinality: usize,
    /// Width per group at planes = 64 (ResNeXt's "d").
    #[config(default = 64)]
    pub base_width: usize,
    /// Shortcut option.
    #[config(default = "ShortcutKind::Projection")]
    pub shortcut: ShortcutKind,
    /// Non-linearity of the block.
    #[config(default = "Activation::Relu")]
    pub act: Activation,
    /// Normalisation after each convolution.
    #[config(default = "Norm::BatchNorm")]
    pub norm: Norm,
    /// Squeeze-and-Excitation, if any.
    #[config(default = "None")]
    pub se: Option<SeSettings>,
    /// Start the last BatchNorm of the branch at zero (timm's `zero_init_last`).
    #[config(default = false)]
    pub zero_init_last: bool,
    /// Pre-activation order (He et al. 2016, identity mappings): BN -> act -> conv inside the
    /// branch, nothing after the addition; a projection shortcut sees the normalised input.
    #[config(default = false)]
    pub preact: bool,
    /// ResNet-D: a strided projection shortcut average-pools 2x2 first, then a stride-1 1x1.
    #[config(default = false)]
    pub avg_down: bool,
    /// Dropout before the branch's last convolution (the WRN paper's), 0 for none.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Stochastic depth: the probability of dropping the branch of a sample in training.
    #[config(default = 0.0)]
    pub drop_path: f64,
}

impl ResidualBlockConfig {
    /// Output channels of the block.
    pub fn out_channels(&self) -> usize {
        self.planes * self.kind.expansion()
    }

    /// Width of the bottleneck's 3x3: floor(planes * base_width / 64) * cardinality (timm).
    pub fn width(&self) -> usize {
        match self.kind {
            BlockKind::Basic => self.planes,
            BlockKind::Bottleneck => self.planes * self.base_width / 64 * self.cardinality,
        }
    }

    /// Checks the combination of options, with the reason when it cannot be built.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_channels == 0 || self.planes == 0 || self.stride == 0 {
            return Err("channels, planes and stride must be positive".into());
        }
        if self.kind == BlockKind::Basic && (self.cardinality != 1 || self.base_width != 64) {
            return Err("the basic block supports only cardinality 1 and base width 64".into());
        }
        if self.cardinality == 0 || self.width() == 0 {
            return Err(format!(
                "cardinality {} with base width {} leaves no channels",
                self.cardinality, self.base_width
            ));
        }
        if self.shortcut == ShortcutKind::ZeroPad && self.out_channels() < self.in_channels {
            return Err(format!(
                "a zero-padded shortcut cannot shrink {} channels to {}",
                self.in_channels,
                self.out_channels()
            ));
        }
        for (what, p) in [
            ("block dropout", self.dropout),
            ("drop path", self.drop_path),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{what} {p} is not a probability in [0, 1)"));
            }
        }
        if self.drop_path > 0.0 && self.shortcut == ShortcutKind::None {
            return Err("drop path needs a shortcut: a plain block would output zero".into());
        }
        if let Some(se) = &self.se {
            if se.reduction == 0 || se.divisor == 0 {
                return Err("SE reduction and divisor must be positive".into());
            }
            if se.position == SePosition::Identity && self.shortcut == ShortcutKind::None {
                return Err("SE on the identity needs a shortcut (not a plain block)".into());
            }
        }
        Ok(())
    }

    fn shortcut_plan(&self) -> Shortcut {
        let changes = self.stride != 1 || self.in_channels != self.out_channels();
        match (self.shortcut, changes) {
            (ShortcutKind::None, _) => Shortcut::None,
            (ShortcutKind::AllProjection, _) | (ShortcutKind::Projection, true) => {
                Shortcut::Projection
            }
            (ShortcutKind::ZeroPad, true) => Shortcut::ZeroPad {
                stride: self.stride,
                extra_channels: self.out_channels() - self.in_channels,
            },
            (ShortcutKind::ZeroPad | ShortcutKind::Projection, false) => Shortcut::Identity,
        }
    }

    /// Builds the block (call [`validate`](Self::validate) first for a readable error).
    pub fn init(&self, device: &Device) -> ResidualBlock {
        let width = self.width();
        let out = self.out_channels();
        let shortcut = self.shortcut_plan();
        let zero_last = self.zero_init_last && shortcut != Shortcut::None;
        let unit = |i, o, k| {
            ConvBnActConfig::square(i, o, k)
                .with_norm(self.norm)
                .with_act(Some(self.act))
        };
        // A linear unit: conv + BN; in pre-activation order a bare conv (the next block, or the
        // network's final norm, normalises), biased only where the net has no BatchNorm at all.
        let linear = |i, o, k| {
            let u = unit(i, o, k).with_act(None);
            if self.preact {
                u.with_norm(Norm::None)
                    .with_bias(Some(self.norm == Norm::None))
            } else {
                u.with_zero_init_norm(zero_last)
            }
        };
        let (conv1, conv2, conv3) = match self.kind {
            BlockKind::Basic => (
                unit(self.in_channels, width, 3).with_stride(self.stride),
                linear(width, out, 3),
                None,
            ),
            BlockKind::Bottleneck => (
                unit(self.in_channels, width, 1),
                unit(width, width, 3)
                    .with_stride(self.stride)
                    .with_groups(self.cardinality),
                Some(linear(width, out, 1)),
            ),
        };
        let pooled = self.avg_down && self.stride > 1;
        let downsample = (shortcut == Shortcut::Projection).then(|| {
            linear(self.in_channels, out, 1)
                .with_zero_init_norm(false)
                .with_stride(if pooled { 1 } else { self.stride })
                .init(device)
        });
        let down_pool = (downsample.is_some() && pooled).then(|| {
            let mut p = Pool2d::avg(2, self.stride, 0).ceil();
            p.count_include_pad = false;
            p
        });
        let pre = (self.preact && self.norm == Norm::BatchNorm)
            .then(|| burn::nn::BatchNormConfig::new(self.in_channels).init(device));
        let se_position = self
            .se
            .as_ref()
            .map_or(SePosition::Standard, |se| se.position);
        let se = self.se.as_ref().map(|se| {
            let channels = match se.position {
                SePosition::Pre => self.in_channels,
                _ => out,
            };
            se.unit(channels).init(device)
        });
        let (conv2, mut conv3) = (conv2.init(device), conv3.map(|c| c.init(device)));
        let mut conv2 = conv2;
        if zero_last && self.preact {
            // No BatchNorm ends a pre-activation branch: zero its last convolution instead
            // (timm's PreActBottleneck.zero_init_last).
            let last = conv3.as_mut().unwrap_or(&mut conv2);
            last.conv.weight =
                burn::module::Param::from_tensor(last.conv.weight.val().zeros_like().detach());
        }
        ResidualBlock {
            pre,
            conv1: conv1.init(device),
            conv2,
            conv3,
            se,
            downsample,
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            drop_path: (self.drop_path > 0.0).then(|| DropPath::new(self.drop_path)),
            shortcut,
            down_pool,
            se_position,
            act: self.act,
            preact: self.preact,
        }
    }
}

/// A residual (or plain) block.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// Pre-activation blocks: the BatchNorm of the block input (timm's `norm1`).
    pub pre: Option<BatchNorm>,
    /// First unit: 3x3 (basic, strided) or 1x1 reduce (bottleneck).
    pub conv1: ConvBnAct,
    /// Second unit: 3x3 (basic, no activation) or grouped strided 3x3 (bottleneck).
    pub conv2: ConvBnAct,
    /// Bottleneck only: the 1x1 expansion (no activation).
    pub conv3: Option<ConvBnAct>,
    /// Squeeze-and-Excitation unit, if any.
    pub se: Option<SqueezeExcite>,
    /// Shortcut projection (options B and C).
    pub downsample: Option<ConvBnAct>,
    /// Dropout before the last convolution of the branch (WRN).
    pub dropout: Option<Dropout>,
    /// Stochastic depth of the branch.
    pub drop_path: Option<DropPath>,
    /// What the shortcut path does.
    #[module(skip)]
    pub shortcut: Shortcut,
    /// ResNet-D: the average pool before the projection.
    #[module(skip)]
    pub down_pool: Option<Pool2d>,
    /// Where the SE unit sits.
    #[module(skip)]
    pub se_position: SePosition,
    /// The activation (after the addition, unless pre-activation).
    #[module(skip)]
    pub act: Activation,
    /// Pre-activation order: normalise and activate the input, nothing after the addition.
    #[module(skip)]
    pub preact: bool,
}

impl ResidualBlock {
    fn se_at(&self, position: SePosition) -> Option<&SqueezeExcite> {
        self.se.as_ref().filter(|_| self.se_position == position)
    }

    /// The residual function F(x) (including an SE-PRE unit, excluding standard SE).
    pub fn branch(&self, x: Tensor<4>) -> Tensor<4> {
        let (units, (_, last)) = self.units();
        let x = self.excite_at(SePosition::Pre, self.preactivate(x), &mut None);
        let h = units.iter().fold(x, |h, (_, unit)| unit.forward(h));
        last.forward(self.drop(h))
    }

    /// The branch input: x itself, or in pre-activation order act(BN(x)).
    fn preactivate(&self, x: Tensor<4>) -> Tensor<4> {
        if self.preact {
            norm_act(self.pre.as_ref(), x, Some(self.act))
        } else {
            x
        }
    }

    /// The block dropout before the last convolution (the identity at inference).
    fn drop(&self, h: Tensor<4>) -> Tensor<4> {
        match &self.dropout {
            Some(d) => d.forward(h),
            None => h,
        }
    }

    /// Recalibrates `t` by the block's SE unit if it sits at `position`, keeping its gates.
    fn excite_at(
        &self,
        position: SePosition,
        t: Tensor<4>,
        gates: &mut Option<Tensor<4>>,
    ) -> Tensor<4> {
        match self.se_at(position) {
            Some(se) => {
                let g = se.gates(t.clone());
                *gates = Some(g.clone());
                t * g
            }
            None => t,
        }
    }

    /// The branch's conv units but the last, by name, and the last one: the last unit is where
    /// the block end may begin (see [`Self::forward_observed`]).
    fn units(&self) -> (Vec<(&'static str, &ConvBnAct)>, (&'static str, &ConvBnAct)) {
        match &self.conv3 {
            Some(c3) => (
                vec![("conv1", &self.conv1), ("conv2", &self.conv2)],
                ("conv3", c3),
            ),
            None => (vec![("conv1", &self.conv1)], ("conv2", &self.conv2)),
        }
    }

    /// The convolution of the branch's last unit when the block end can take it into one
    /// pass (at inference, `relu(conv(h) + shortcut)`): a bare biased convolution (BatchNorm
    /// folded into it, no activation) followed directly by the addition with a shortcut and a
    /// ReLU, no SE unit after the branch.
    fn absorbable(&self, last: &'_ ConvBnAct) -> bool {
        let bare = last.bn.is_none() && last.act.is_none() && last.conv.bias.is_some();
        let plain_end = self.act == Activation::Relu
            && !self.preact
            && self.shortcut != Shortcut::None
            && self.se_at(SePosition::Standard).is_none()
            && self.se_at(SePosition::Post).is_none()
            && self.se_at(SePosition::Identity).is_none();
        bare && plain_end
    }

    /// The shortcut path, or `None` for a plain block.
    pub fn shortcut(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        let xp = (self.preact && self.shortcut == Shortcut::Projection)
            .then(|| self.preactivate(x.clone()));
        self.shortcut_tapped(x, xp, &mut no_tap, &mut None)
    }

    /// The shortcut of input `x`; a pre-activation block's projection takes `xp`, the
    /// normalised input its branch starts from.
    fn shortcut_tapped(
        &self,
        x: Tensor<4>,
        xp: Option<Tensor<4>>,
        tap: UnitTap,
        gates: &mut Option<Tensor<4>>,
    ) -> Option<Tensor<4>> {
        let sc = match self.shortcut {
            Shortcut::None => return None,
            Shortcut::Identity => x,
            Shortcut::ZeroPad {
                stride,
                extra_channels,
            } => zero_pad_shortcut(x, stride, extra_channels),
            Shortcut::Projection => {
                let x = xp.unwrap_or(x);
                let x = match &self.down_pool {
                    Some(p) => p.forward(x),
                    None => x,
                };
                match &self.downsample {
                    Some(ds) => tap("downsample", ds, ds.forward(x)),
                    None => x,
                }
            }
        };
        Some(self.excite_at(SePosition::Identity, sc, gates))
    }

    /// True when the block keeps the shape of its input (stride 1, as many channels out as in).
    pub fn keeps_shape(&self) -> bool {
        let [_, in_per_group, _, _] = self.conv1.conv.weight.lazy_shape().dims::<4>();
        let in_channels = in_per_group * self.conv1.conv.groups;
        let (_, (_, last)) = self.units();
        self.conv1.conv.stride == [1, 1]
            && self.conv2.conv.stride == [1, 1]
            && in_channels == last.out_channels()
    }

    /// True when [`lesioned`](Self::lesioned) can delete the block.
    pub fn deletable(&self) -> bool {
        self.shortcut != Shortcut::None || self.keeps_shape()
    }

    /// The block deleted (Veit et al. 2016's lesion): the branch removed and the shortcut kept
    /// (the identity, or a downsampling block's zero-pad / projection alone); a plain block
    /// becomes the identity where it keeps the shape. `None` for a plain block that changes
    /// the shape, which cannot be deleted.
    pub fn lesioned(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        match self.shortcut {
            Shortcut::None => self.keeps_shape().then_some(x),
            _ => self.shortcut(x),
        }
    }

    /// y = act(F(x) + shortcut(x)), with the SE unit where it was configured.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_observed(x, &mut no_tap, Observe::Nothing).0
    }

    /// [`forward`](Self::forward), showing each conv unit's output to `tap` (`conv1`, `conv2`,
    /// `conv3`, `downsample`, in that order).
    pub fn forward_tapped(&self, x: Tensor<4>, tap: UnitTap) -> Tensor<4> {
        self.forward_observed(x, tap, Observe::Units).0
    }

    /// [`forward`](Self::forward) and the gates `[N, C, 1, 1]` its SE unit applied, wherever
    /// the unit sits (`None` without SE): the data of the SE paper's excitation plots.
    pub fn forward_with_gates(&self, x: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        self.forward_observed(x, &mut no_tap, Observe::Gates)
    }

    /// The block's output, and its SE gates when `observe` asks for them: the branch's units,
    /// the shortcut, then [`Self::end`]. When nothing is observed and the last unit is
    /// [`absorbable`](Self::absorbable), that unit's convolution, the addition and the ReLU
    /// run as one operation instead.
    fn forward_observed(
        &self,
        x: Tensor<4>,
        tap: UnitTap,
        observe: Observe,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let mut gates = None;
        let (units, (name, last)) = self.units();
        let xp = self.preact.then(|| self.preactivate(x.clone()));
        let input = xp.clone().unwrap_or_else(|| x.clone());
        let mut h = self.excite_at(SePosition::Pre, input, &mut gates);
        for (name, unit) in units {
            h = tap(name, unit, unit.forward(h));
        }
        h = self.drop(h);
        let dropping = self.drop_path.as_ref().is_some_and(|d| d.active(&h));
        if observe == Observe::Nothing
            && !dropping
            && self.absorbable(last)
            && let Some(sc) = self.shortcut_tapped(x.clone(), xp.clone(), tap, &mut gates)
        {
            return (conv_add_relu(&last.conv, h, sc), gates);
        }
        let y = tap(name, last, last.forward(h));
        let shortcut = self.shortcut_tapped(x, xp, tap, &mut gates);
        self.end(y, shortcut, observe == Observe::Gates, gates)
    }

    /// The block end after the branch `y`: its SE unit (standard or post), the addition of the
    /// shortcut and the activation, returning the output and the gates (`gates`, the ones an
    /// earlier SE unit applied, unless this end's unit applies its own). With a ReLU right after
    /// the addition they are one fused operation of the kernels: `add_relu`, `scale_add_relu`
    /// with the gates, or, when the gates are not wanted, `se_scale_add_relu` with squeeze and
    /// excitation inside.
    pub(crate) fn end(
        &self,
        y: Tensor<4>,
        shortcut: Option<Tensor<4>>,
        want_gates: bool,
        mut gates: Option<Tensor<4>>,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let standard = self.se_at(SePosition::Standard);
        let dropping = self.drop_path.as_ref().is_some_and(|d| d.active(&y));
        let fused_end = self.act == Activation::Relu
            && !self.preact
            && !dropping
            && self.se_at(SePosition::Post).is_none();
        match shortcut {
            Some(sc) if fused_end => match standard {
                Some(se) if !want_gates && se.fc1.bias.is_some() && se.fc2.bias.is_some() => {
                    let (w1, w2) = (se.fc1.weight.val(), se.fc2.weight.val());
                    let b1 = se
                        .fc1
                        .bias
                        .as_ref()
                        .map(burn::module::Param::val)
                        .expect("checked");
                    let b2 = se
                        .fc2
                        .bias
                        .as_ref()
                        .map(burn::module::Param::val)
                        .expect("checked");
                    let y = cnnzoo_kernels::se_scale_add_relu(y, w1, b1, w2, b2, sc);
                    (y, None)
                }
                Some(se) => {
                    let g = se.gates(y.clone());
                    let y = cnnzoo_kernels::scale_add_relu(y, g.clone(), sc);
                    (y, Some(g))
                }
                None => (cnnzoo_kernels::add_relu(y, sc), gates),
            },
            shortcut => {
                // With standard SE this is the channel-wise axpy y * gates + shortcut.
                let mut y = self.excite_at(SePosition::Standard, y, &mut gates);
                if let Some(dp) = &self.drop_path {
                    y = dp.forward(y);
                }
                let y = match shortcut {
                    Some(sc) => y + sc,
                    None => y,
                };
                let y = self.excite_at(SePosition::Post, y, &mut gates);
                if self.preact {
                    (y, gates)
                } else {
                    (self.act.apply(y), gates)
                }
            }
        }
    }
}

/// What a caller of [`ResidualBlock::forward_observed`] looks at besides the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observe {
    Nothing,
    /// Each conv unit's output, through the tap.
    Units,
    /// The SE unit's gates.
    Gates,
}

/// Option A: subsample by `stride`, then append `extra` zero channels
/// ([`cnnzoo_kernels::zero_pad_shortcut`]: one pass each way on the CPU).
pub fn zero_pad_shortcut(x: Tensor<4>, stride: usize, extra: usize) -> Tensor<4> {
    cnnzoo_kernels::zero_pad_shortcut(x, stride, extra)
}

impl Trace for ResidualBlock {
    /// The block as [`ResidualBlock::forward`] computes it, without the fused paths: the branch's
    /// units, the shortcut, the SE unit where it sits, the addition and the activation.
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let excite = |g: &mut Graph, position, t| match self.se_at(position) {
            Some(se) => se.trace(&join(prefix, "se"), t, g),
            None => t,
        };
        let (units, (last_name, last)) = self.units();
        let xp = if self.preact {
            let mut t = x;
            if let Some(bn) = &self.pre {
                t = g.batch_norm(&join(prefix, "pre"), bn, t);
            }
            self.act.trace(&join(prefix, "pre"), t, g)
        } else {
            x
        };
        let mut h = excite(g, SePosition::Pre, xp);
        for (name, unit) in units {
            h = unit.trace(&join(prefix, name), h, g);
        }
        h = last.trace(&join(prefix, last_name), h, g);
        let shortcut = match self.shortcut {
            Shortcut::None => None,
            Shortcut::Identity => Some(x),
            Shortcut::ZeroPad {
                stride,
                extra_channels,
            } => Some(g.zero_pad_shortcut(&join(prefix, "shortcut"), stride, extra_channels, x)),
            Shortcut::Projection => {
                let mut t = xp;
                if let Some(p) = &self.down_pool {
                    t = p.trace(&join(prefix, "downsample.pool"), t, g);
                }
                Some(match &self.downsample {
                    Some(ds) => ds.trace(&join(prefix, "downsample"), t, g),
                    None => t,
                })
            }
        };
        let shortcut = shortcut.map(|sc| excite(g, SePosition::Identity, sc));
        h = excite(g, SePosition::Standard, h);
        if let Some(sc) = shortcut {
            h = g.add(&join(prefix, "add"), h, sc);
        }
        h = excite(g, SePosition::Post, h);
        if self.preact {
            h
        } else {
            self.act.trace(prefix, h, g)
        }
    }
}

impl Summarize for ResidualBlock {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        if let Some(bn) = &self.pre {
            s.batch_norm(join(prefix, "pre"), bn, input);
        }
        if let Some(se) = self.se_at(SePosition::Pre) {
            se.summarize(&join(prefix, "se"), input, s)?;
        }
        let mut y = self.conv1.summarize(&join(prefix, "conv1"), input, s)?;
        y = self.conv2.summarize(&join(prefix, "conv2"), y, s)?;
        if let Some(c) = &self.conv3 {
            y = c.summarize(&join(prefix, "conv3"), y, s)?;
        }
        if let Some(se) = &self.se
            && self.se_position != SePosition::Pre
        {
            se.summarize(&join(prefix, "se"), y, s)?;
        }
        if let Some(ds) = &self.downsample {
            let pooled = match &self.down_pool {
                Some(p) => p.summarize(join(prefix, "downsample.pool"), input, s)?,
                None => input,
            };
            let sc = ds.summarize(&join(prefix, "downsample"), pooled, s)?;
            if sc != y {
                return Err(ShapeError {
                    layer: join(prefix, "downsample"),
                    reason: format!("shortcut {sc:?} does not match branch {y:?}"),
                });
            }
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::count_trainable;
    use burn::tensor::{Distribution, TensorData};

    fn device() -> Device {
        Device::default()
    }

    #[test]
    fn se_gates_are_the_gates_the_block_applies() {
        let d = device();
        let block = ResidualBlockConfig::new(16, 32, BlockKind::Basic)
            .with_stride(2)
            .with_se(Some(SeSettings::new().with_divisor(1)))
            .init(&d);
        let x = Tensor::<4>::random([2, 16, 8, 8], Distribution::Default, &d);
        let (out, gates) = block.forward_with_gates(x.clone());
        let gates = gates.unwrap();
        assert_eq!(gates.dims(), [2, 32, 1, 1]);
        let manual = block
            .act
            .apply(block.branch(x.clone()) * gates + block.shortcut(x.clone()).unwrap());
        let diff: f32 = (manual - block.forward(x.clone()))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-5, "{diff}");
        let diff: f32 = (out - block.forward(x.clone())).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
        let plain = ResidualBlockConfig::new(16, 16, BlockKind::Basic).init(&d);
        assert!(plain.forward_with_gates(x).1.is_none());
    }

    #[test]
    fn basic_block_identity_and_projection_shapes() {
        let d = device();
        let same = ResidualBlockConfig::new(16, 16, BlockKind::Basic).init(&d);
        assert_eq!(same.shortcut, Shortcut::Identity);
        assert!(same.downsample.is_none());
        let x = Tensor::<4>::random([2, 16, 8, 8], Distribution::Default, &d);
        assert_eq!(same.forward(x).dims(), [2, 16, 8, 8]);

        let down = ResidualBlockConfig::new(16, 32, BlockKind::Basic)
            .with_stride(2)
            .init(&d);
        assert_eq!(down.shortcut, Shortcut::Projection);
        let x = Tensor::<4>::random([2, 16, 8, 8], Distribution::Default, &d);
        assert_eq!(down.forward(x).dims(), [2, 32, 4, 4]);
        // conv 16*32*9 + conv 32*32*9 + projection 16*32, BN 2*(32+32+32).
        assert_eq!(
            count_trainable(&down),
            16 * 32 * 9 + 32 * 32 * 9 + 16 * 32 + 2 * 96
        );
    }

    #[test]
    fn option_a_is_parameter_free_and_pads_zeros() {
        let d = device();
        let block = ResidualBlockConfig::new(2, 4, BlockKind::Basic)
            .with_stride(2)
            .with_shortcut(ShortcutKind::ZeroPad)
            .init(&d);
        assert_eq!(
            block.shortcut,
            Shortcut::ZeroPad {
                stride: 2,
                extra_channels: 2
            }
        );
        let data = TensorData::new((0..32).map(|v| v as f32).collect::<Vec<_>>(), [1, 2, 4, 4]);
        let x = Tensor::<4>::from_data(data, &d);
        let sc: Vec<f32> = block
            .shortcut(x)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // Channel 0 subsampled: rows 0 and 2, cols 0 and 2 of 0..16; channel 1 likewise; then zeros.
        assert_eq!(
            sc,
            vec![
                0., 2., 8., 10., 16., 18., 24., 26., 0., 0., 0., 0., 0., 0., 0., 0.
            ]
        );
    }

    #[test]
    fn option_c_projects_even_without_a_shape_change() {
        let block = ResidualBlockConfig::new(8, 8, BlockKind::Basic)
            .with_shortcut(ShortcutKind::AllProjection)
            .init(&device());
        assert!(block.downsample.is_some());
    }

    #[test]
    fn plain_block_has_no_shortcut_and_zero_branch_gives_zero() {
        let d = device();
        let plain = ResidualBlockConfig::new(4, 4, BlockKind::Basic)
            .with_shortcut(ShortcutKind::None)
            .with_zero_init_last(true)
            .init(&d);
        // zero-init-last is ignored for plain blocks: they would output constant zero.
        let gamma: Vec<f32> = plain
            .conv2
            .bn
            .as_ref()
            .unwrap()
            .gamma
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(gamma.iter().all(|g| *g == 1.0));
        assert!(
            plain
                .shortcut(Tensor::<4>::ones([1, 4, 2, 2], &d))
                .is_none()
        );
    }

    #[test]
    fn zero_init_last_makes_the_block_start_as_relu_of_identity() {
        let d = device();
        let block = ResidualBlockConfig::new(4, 4, BlockKind::Basic)
            .with_zero_init_last(true)
            .init(&d);
        let x = Tensor::<4>::random([1, 4, 3, 3], Distribution::Default, &d);
        let y = block.forward(x.clone());
        let diff: f32 = (y - burn::tensor::activation::relu(x))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-6);
    }

    #[test]
    fn resnext_width_rule_matches_timm() {
        let c = ResidualBlockConfig::new(64, 64, BlockKind::Bottleneck)
            .with_cardinality(32)
            .with_base_width(4);
        assert_eq!(c.width(), 128);
        let c = ResidualBlockConfig::new(512, 256, BlockKind::Bottleneck)
            .with_cardinality(32)
            .with_base_width(8);
        assert_eq!(c.width(), 1024);
        let block = ResidualBlockConfig::new(64, 64, BlockKind::Bottleneck)
            .with_cardinality(32)
            .with_base_width(4)
            .init(&device());
        assert_eq!(block.conv2.conv.groups, 32);
        assert_eq!(
            block.conv2.conv.weight.lazy_shape().dims::<4>(),
            [128, 4, 3, 3]
        );
    }

    #[test]
    fn se_positions_change_where_the_gate_acts() {
        let d = device();
        let x = Tensor::<4>::random([2, 16, 4, 4], Distribution::Default, &d);
        for pos in [
            SePosition::Standard,
            SePosition::Pre,
            SePosition::Post,
            SePosition::Identity,
        ] {
            let block = ResidualBlockConfig::new(16, 16, BlockKind::Basic)
                .with_se(Some(SeSettings::new().with_position(pos)))
                .init(&d);
            assert_eq!(block.se_position, pos);
            assert_eq!(block.forward(x.clone()).dims(), [2, 16, 4, 4]);
            let mut s = Summary::default();
            block.summarize("b", [16, 4, 4], &mut s).unwrap();
            assert_eq!(s.params(), count_trainable(&block));
        }
        let bad = ResidualBlockConfig::new(16, 16, BlockKind::Basic)
            .with_shortcut(ShortcutKind::None)
            .with_se(Some(SeSettings::new().with_position(SePosition::Identity)));
        assert!(bad.validate().is_err());
    }

    fn max_abs(t: Tensor<4>) -> f32 {
        t.abs().max().into_scalar()
    }

    #[test]
    fn preact_block_adds_the_branch_to_a_clean_identity() {
        let d = device();
        let block = ResidualBlockConfig::new(8, 4, BlockKind::Bottleneck)
            .with_preact(true)
            .init(&d);
        assert!(block.pre.is_some() && block.downsample.is_some());
        // The branch ends in a bare convolution: no norm after it, no activation.
        let last = block.conv3.as_ref().unwrap();
        assert!(last.bn.is_none() && last.act.is_none() && last.conv.bias.is_none());
        let x = Tensor::<4>::random([2, 8, 5, 5], Distribution::Normal(0.0, 1.0), &d);
        // Nothing after the addition: the output takes negative values.
        let y = block.forward(x.clone());
        let min: f32 = y.clone().min().into_scalar();
        assert!(min < 0.0);
        let sum = block.branch(x.clone()) + block.shortcut(x.clone()).unwrap();
        assert!(max_abs(y - sum) < 1e-5);
        let same = ResidualBlockConfig::new(8, 8, BlockKind::Basic)
            .with_preact(true)
            .init(&d);
        assert_eq!(same.shortcut, Shortcut::Identity);
        let diff = same.forward(x.clone()) - x.clone() - same.branch(x);
        assert!(max_abs(diff) < 1e-5);
    }

    #[test]
    fn avg_down_shortcut_pools_then_projects() {
        let d = device();
        let block = ResidualBlockConfig::new(4, 8, BlockKind::Basic)
            .with_stride(2)
            .with_avg_down(true)
            .init(&d);
        let ds = block.downsample.as_ref().unwrap();
        assert_eq!(ds.conv.stride, [1, 1]);
        // Odd sizes: the ceil-mode pool matches the strided branch (7 -> 4).
        let x = Tensor::<4>::random([1, 4, 7, 7], Distribution::Default, &d);
        let pooled = burn::tensor::module::avg_pool2d(
            x.clone(),
            burn::tensor::ops::AvgPoolOptions {
                kernel_size: [2, 2],
                stride: [2, 2],
                padding: [(0, 0); 2],
                count_include_pad: false,
                ceil_mode: true,
            },
        );
        let want = ds.forward(pooled);
        assert_eq!(want.dims(), [1, 8, 4, 4]);
        assert!(max_abs(block.shortcut(x.clone()).unwrap() - want) < 1e-6);
        assert_eq!(block.forward(x).dims(), [1, 8, 4, 4]);
    }

    #[test]
    fn drop_path_drops_whole_samples_in_training_only() {
        let base = device();
        let d = base.autodiff();
        let block = ResidualBlockConfig::new(4, 4, BlockKind::Basic)
            .with_preact(true)
            .with_drop_path(0.5)
            .init(&d);
        let x = Tensor::<4>::random([64, 4, 3, 3], Distribution::Normal(0.0, 1.0), &d);
        let branch = block.branch(x.clone());
        let delta = block.forward(x.clone()) - x.clone();
        let (mut dropped, mut kept) = (0, 0);
        for i in 0..64 {
            let di = delta.clone().narrow(0, i, 1);
            let bi = branch.clone().narrow(0, i, 1);
            if max_abs(di.clone()) == 0.0 {
                dropped += 1;
            } else {
                // A surviving branch is scaled by 1 / (1 - p).
                assert!(max_abs(di - bi * 2.0) < 1e-4);
                kept += 1;
            }
        }
        assert!(dropped > 10 && kept > 10, "{dropped} dropped, {kept} kept");
        // At inference the whole branch is there.
        let eval = block.valid();
        let x = x.inner();
        let diff = eval.forward(x.clone()) - x.clone() - eval.branch(x);
        assert!(max_abs(diff) < 1e-5);
        let bad = ResidualBlockConfig::new(4, 4, BlockKind::Basic)
            .with_shortcut(ShortcutKind::None)
            .with_drop_path(0.1);
        assert!(bad.validate().unwrap_err().contains("shortcut"));
        let bad = ResidualBlockConfig::new(4, 4, BlockKind::Basic).with_dropout(1.0);
        assert!(bad.validate().unwrap_err().contains("probability"));
    }

    #[test]
    fn block_dropout_acts_in_training_and_vanishes_at_inference() {
        let d = device().autodiff();
        let block = ResidualBlockConfig::new(8, 8, BlockKind::Basic)
            .with_dropout(0.5)
            .init(&d);
        let x = Tensor::<4>::random([2, 8, 6, 6], Distribution::Normal(0.0, 1.0), &d);
        let a = block.forward(x.clone());
        let b = block.forward(x.clone());
        assert!(
            max_abs(a - b) > 0.0,
            "two training passes drew the same mask"
        );
        let eval = block.valid();
        let x = x.inner();
        let a = eval.forward(x.clone());
        let b = eval.forward(x);
        assert_eq!(max_abs(a - b), 0.0);
    }

    #[test]
    fn invalid_combinations_are_reported() {
        let c = ResidualBlockConfig::new(8, 8, BlockKind::Basic).with_cardinality(4);
        assert!(c.validate().unwrap_err().contains("basic block"));
        let c =
            ResidualBlockConfig::new(32, 8, BlockKind::Basic).with_shortcut(ShortcutKind::ZeroPad);
        assert!(c.validate().unwrap_err().contains("zero-padded"));
    }
}
