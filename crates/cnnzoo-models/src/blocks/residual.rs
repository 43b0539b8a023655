//! Residual blocks: y = act(F(x) + shortcut(x)).
//!
//! One block type covers the basic block (3x3, 3x3), the bottleneck (1x1 reduce, 3x3 grouped,
//! 1x1 expand; ResNeXt through cardinality and base width), SE at any of the four positions,
//! the three shortcut options of the ResNet paper and the plain (no-shortcut) twin.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::conv_bn_act::{ConvBnAct, ConvBnActConfig, Norm, UnitTap, no_tap};
use super::layers::conv_add_relu;
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
        let (conv1, conv2, conv3) = match self.kind {
            BlockKind::Basic => (
                unit(self.in_channels, width, 3).with_stride(self.stride),
                unit(width, out, 3)
                    .with_act(None)
                    .with_zero_init_norm(zero_last),
                None,
            ),
            BlockKind::Bottleneck => (
                unit(self.in_channels, width, 1),
                unit(width, width, 3)
                    .with_stride(self.stride)
                    .with_groups(self.cardinality),
                Some(
                    unit(width, out, 1)
                        .with_act(None)
                        .with_zero_init_norm(zero_last),
                ),
            ),
        };
        let downsample = (shortcut == Shortcut::Projection).then(|| {
            unit(self.in_channels, out, 1)
                .with_stride(self.stride)
                .with_act(None)
                .init(device)
        });
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
        ResidualBlock {
            conv1: conv1.init(device),
            conv2: conv2.init(device),
            conv3: conv3.map(|c| c.init(device)),
            se,
            downsample,
            shortcut,
            se_position,
            act: self.act,
        }
    }
}

/// A residual (or plain) block.
#[derive(Module, Debug)]
pub struct ResidualBlock {
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
    /// What the shortcut path does.
    #[module(skip)]
    pub shortcut: Shortcut,
    /// Where the SE unit sits.
    #[module(skip)]
    pub se_position: SePosition,
    /// The activation after the addition.
    #[module(skip)]
    pub act: Activation,
}

impl ResidualBlock {
    fn se_at(&self, position: SePosition) -> Option<&SqueezeExcite> {
        self.se.as_ref().filter(|_| self.se_position == position)
    }

    /// The residual function F(x) (including an SE-PRE unit, excluding standard SE).
    pub fn branch(&self, x: Tensor<4>) -> Tensor<4> {
        let (units, (_, last)) = self.units();
        let x = self.excite_at(SePosition::Pre, x, &mut None);
        last.forward(units.iter().fold(x, |h, (_, unit)| unit.forward(h)))
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
            && self.shortcut != Shortcut::None
            && self.se_at(SePosition::Standard).is_none()
            && self.se_at(SePosition::Post).is_none()
            && self.se_at(SePosition::Identity).is_none();
        bare && plain_end
    }

    /// The shortcut path, or `None` for a plain block.
    pub fn shortcut(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        self.shortcut_tapped(x, &mut no_tap, &mut None)
    }

    fn shortcut_tapped(
        &self,
        x: Tensor<4>,
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
            Shortcut::Projection => match &self.downsample {
                Some(ds) => tap("downsample", ds, ds.forward(x)),
                None => x,
            },
        };
        Some(self.excite_at(SePosition::Identity, sc, gates))
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
        let mut h = self.excite_at(SePosition::Pre, x.clone(), &mut gates);
        for (name, unit) in units {
            h = tap(name, unit, unit.forward(h));
        }
        if observe == Observe::Nothing
            && self.absorbable(last)
            && let Some(sc) = self.shortcut_tapped(x.clone(), tap, &mut gates)
        {
            return (conv_add_relu(&last.conv, h, sc), gates);
        }
        let y = tap(name, last, last.forward(h));
        let shortcut = self.shortcut_tapped(x, tap, &mut gates);
        self.end(y, shortcut, observe == Observe::Gates, gates)
    }

    /// The block end after the branch `y`: its SE unit (standard or post), the addition of the
    /// shortcut and the activation, returning the output and the gates (`gates`, the ones an
    /// earlier SE unit applied, unless this end's unit applies its own). With a ReLU right after
    /// the addition they are one fused operation of the kernels: `add_relu`, `scale_add_relu`
    /// with the gates, or, when the gates are not wanted, `se_scale_add_relu` with squeeze and
    /// excitation inside.
    fn end(
        &self,
        y: Tensor<4>,
        shortcut: Option<Tensor<4>>,
        want_gates: bool,
        mut gates: Option<Tensor<4>>,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let standard = self.se_at(SePosition::Standard);
        let fused_end = self.act == Activation::Relu && self.se_at(SePosition::Post).is_none();
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
                let y = self.excite_at(SePosition::Standard, y, &mut gates);
                let y = match shortcut {
                    Some(sc) => y + sc,
                    None => y,
                };
                let y = self.excite_at(SePosition::Post, y, &mut gates);
                (self.act.apply(y), gates)
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
        let mut h = excite(g, SePosition::Pre, x);
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
            Shortcut::Projection => Some(match &self.downsample {
                Some(ds) => ds.trace(&join(prefix, "downsample"), x, g),
                None => x,
            }),
        };
        let shortcut = shortcut.map(|sc| excite(g, SePosition::Identity, sc));
        h = excite(g, SePosition::Standard, h);
        if let Some(sc) = shortcut {
            h = g.add(&join(prefix, "add"), h, sc);
        }
        h = excite(g, SePosition::Post, h);
        self.act.trace(prefix, h, g)
    }
}

impl Summarize for ResidualBlock {
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
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
            let sc = ds.summarize(&join(prefix, "downsample"), input, s)?;
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

    #[test]
    fn invalid_combinations_are_reported() {
        let c = ResidualBlockConfig::new(8, 8, BlockKind::Basic).with_cardinality(4);
        assert!(c.validate().unwrap_err().contains("basic block"));
        let c =
            ResidualBlockConfig::new(32, 8, BlockKind::Basic).with_shortcut(ShortcutKind::ZeroPad);
        assert!(c.validate().unwrap_err().contains("zero-padded"));
    }
}
