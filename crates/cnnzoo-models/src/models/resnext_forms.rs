//! ResNeXt's three equivalent forms (Xie et al. 2017, Fig. 3), built from one network's
//! weights so that they can be compared numerically:
//!
//! - (a) *split*: `cardinality` parallel paths 1x1 -> 3x3 -> 1x1, their outputs summed;
//! - (b) *concat*: paths 1x1 -> 3x3, concatenated, then one 1x1;
//! - (c) *grouped*: one 1x1, one grouped 3x3, one 1x1 (how every ResNeXt here is built).
//!
//! The rearrangement is exact for the convolutions: path `i` of (a) and (b) takes rows
//! `i*d .. (i+1)*d` of the reduce 1x1 and of the grouped 3x3 (group `i`), and (a) takes columns
//! `i*d .. (i+1)*d` of the expanding 1x1. BatchNorm is per channel, so it splits the same way;
//! the forms are built from an inference network with BatchNorm folded into the convolutions
//! ([`FuseBn`](crate::FuseBn)), where each unit is a biased convolution.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::blocks::Activation;
use crate::blocks::layers::{conv_act, conv2d};
use crate::blocks::residual::ResidualBlock;
use crate::blocks::squeeze_excite::SePosition;
use crate::models::resnet::ResNet;

/// One of the three forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// (a): parallel paths 1x1 -> 3x3 -> 1x1, summed.
    Split,
    /// (b): paths 1x1 -> 3x3, concatenated, one 1x1.
    Concat,
    /// (c): grouped 3x3 convolution.
    Grouped,
}

impl Form {
    /// Every form, (a) to (c).
    pub const ALL: [Form; 3] = [Form::Split, Form::Concat, Form::Grouped];

    /// The paper's letter and name, e.g. `(a) split`.
    pub fn label(self) -> &'static str {
        match self {
            Form::Split => "(a) split",
            Form::Concat => "(b) concat",
            Form::Grouped => "(c) grouped",
        }
    }
}

/// One path of forms (a) and (b).
#[derive(Debug)]
struct Path {
    /// 1x1 from the block input to `d` channels.
    reduce: Conv2d,
    /// 3x3 (strided like the block) from `d` to `d` channels.
    transform: Conv2d,
    /// Form (a) only: this path's share of the expanding 1x1 (no bias: it is added once).
    expand: Option<Conv2d>,
}

/// A grouped bottleneck rearranged into form (a) or (b).
#[derive(Debug)]
pub struct FormedBlock<'a> {
    block: &'a ResidualBlock,
    paths: Vec<Path>,
    act: Option<Activation>,
}

fn conv_weights(conv: &Conv2d) -> usize {
    conv.weight.lazy_shape().num_elements()
}

fn conv_params(conv: &Conv2d) -> usize {
    conv_weights(conv)
        + conv
            .bias
            .as_ref()
            .map_or(0, |b| b.lazy_shape().num_elements())
}

/// `conv` with the given weight and bias, ungrouped.
fn with_weights(conv: &Conv2d, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Conv2d {
    let mut c = conv.clone();
    c.weight = Param::from_tensor(weight);
    c.bias = bias.map(Param::from_tensor);
    c.groups = 1;
    c
}

impl<'a> FormedBlock<'a> {
    /// Rearranges a BatchNorm-folded grouped bottleneck into `form` ((a) or (b)); the error
    /// says why a block cannot be (not a grouped bottleneck, BatchNorm not folded, SE on the
    /// block input, pre-activation order).
    pub fn new(block: &'a ResidualBlock, form: Form) -> Result<Self, String> {
        let Some(conv3) = &block.conv3 else {
            return Err("not a bottleneck block".into());
        };
        let groups = block.conv2.conv.groups;
        if groups < 2 {
            return Err("the 3x3 convolution is not grouped".into());
        }
        if form == Form::Grouped {
            return Err("form (c) is the block itself".into());
        }
        if [&block.conv1, &block.conv2, conv3]
            .iter()
            .any(|u| u.bn.is_some() || u.conv.bias.is_none())
        {
            return Err("fold BatchNorm into the convolutions first (fuse_bn)".into());
        }
        if block.preact || (block.se.is_some() && block.se_position == SePosition::Pre) {
            return Err("only post-activation blocks without SE on the input rearrange".into());
        }
        let (c1, c2, c3) = (&block.conv1.conv, &block.conv2.conv, &conv3.conv);
        let width = c2.weight.lazy_shape().dims::<4>()[0];
        let d = width / groups;
        let bias = |c: &Conv2d, i: usize| c.bias.as_ref().map(|b| b.val().narrow(0, i * d, d));
        let paths = (0..groups)
            .map(|i| Path {
                reduce: with_weights(c1, c1.weight.val().narrow(0, i * d, d), bias(c1, i)),
                transform: with_weights(c2, c2.weight.val().narrow(0, i * d, d), bias(c2, i)),
                expand: (form == Form::Split)
                    .then(|| with_weights(c3, c3.weight.val().narrow(1, i * d, d), None)),
            })
            .collect();
        Ok(FormedBlock {
            block,
            paths,
            act: block.conv1.act,
        })
    }

    /// The block's output: the paths, their merge, then the block's own end (SE, shortcut,
    /// addition, activation).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let conv3 = &self.block.conv3.as_ref().expect("checked in new").conv;
        let transformed = self.paths.iter().map(|p| {
            let h = conv_act(&p.reduce, x.clone(), self.act);
            (p, conv_act(&p.transform, h, self.act))
        });
        let y = if self.paths[0].expand.is_some() {
            let sum = transformed
                .map(|(p, t)| conv2d(p.expand.as_ref().expect("form (a)"), t))
                .reduce(|a, b| a + b)
                .expect("at least two paths");
            match &conv3.bias {
                Some(b) => {
                    let [_, c, _, _] = sum.dims();
                    sum + b.val().reshape([1, c, 1, 1])
                }
                None => sum,
            }
        } else {
            conv2d(conv3, Tensor::cat(transformed.map(|(_, t)| t).collect(), 1))
        };
        self.block.end(y, self.block.shortcut(x), false, None).0
    }

    /// Parameters of the rearranged convolutions.
    pub fn params(&self) -> usize {
        let conv3 = &self.block.conv3.as_ref().expect("checked in new").conv;
        let paths: usize = self
            .paths
            .iter()
            .map(|p| conv_params(&p.reduce) + conv_params(&p.transform))
            .sum();
        match self.paths[0].expand {
            Some(_) => {
                paths
                    + self
                        .paths
                        .iter()
                        .filter_map(|p| p.expand.as_ref().map(conv_params))
                        .sum::<usize>()
                    + conv3
                        .bias
                        .as_ref()
                        .map_or(0, |b| b.lazy_shape().num_elements())
            }
            None => paths + conv_params(conv3),
        }
    }

    /// Multiply-accumulates of the rearranged convolutions for an input of `in_hw` pixels
    /// producing `out_hw` pixels.
    pub fn macs(&self, in_hw: usize, out_hw: usize) -> usize {
        let conv3 = &self.block.conv3.as_ref().expect("checked in new").conv;
        let paths: usize = self
            .paths
            .iter()
            .map(|p| {
                conv_weights(&p.reduce) * in_hw
                    + conv_weights(&p.transform) * out_hw
                    + p.expand.as_ref().map_or(0, |e| conv_weights(e) * out_hw)
            })
            .sum();
        match self.paths[0].expand {
            Some(_) => paths,
            None => paths + conv_weights(conv3) * out_hw,
        }
    }
}

/// Parameters and multiply-accumulates of a block's own three convolutions (form (c)).
pub fn grouped_cost(block: &ResidualBlock, in_hw: usize, out_hw: usize) -> (usize, usize) {
    let units = [Some(&block.conv1), Some(&block.conv2), block.conv3.as_ref()];
    let mut params = 0;
    let mut macs = 0;
    for (i, u) in units.into_iter().enumerate() {
        let Some(u) = u else { continue };
        params += conv_params(&u.conv);
        macs += conv_weights(&u.conv) * if i == 0 { in_hw } else { out_hw };
    }
    (params, macs)
}

/// A residual network whose grouped bottlenecks run in one form.
#[derive(Debug)]
pub struct FormedNet<'a> {
    net: &'a ResNet,
    form: Form,
    blocks: Vec<Option<FormedBlock<'a>>>,
}

impl<'a> FormedNet<'a> {
    /// Rearranges every grouped bottleneck of a BatchNorm-folded `net` into `form`; other
    /// blocks run as they are. An error when the net has no grouped bottleneck.
    pub fn new(net: &'a ResNet, form: Form) -> Result<Self, String> {
        let grouped = |b: &ResidualBlock| b.conv3.is_some() && b.conv2.conv.groups > 1;
        let all: Vec<&ResidualBlock> = net.stages.iter().flatten().collect();
        if !all.iter().any(|b| grouped(b)) {
            return Err("the network has no grouped bottleneck (not a ResNeXt)".into());
        }
        let blocks = all
            .into_iter()
            .map(|b| match form {
                Form::Grouped => Ok(None),
                _ if grouped(b) => FormedBlock::new(b, form).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(FormedNet { net, form, blocks })
    }

    /// The form the grouped blocks run in.
    pub fn form(&self) -> Form {
        self.form
    }

    /// Logits, every grouped bottleneck in this form.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.net.stem.forward(x);
        for (block, formed) in self.net.stages.iter().flatten().zip(&self.blocks) {
            x = match formed {
                Some(f) => f.forward(x),
                None => block.forward(x),
            };
        }
        self.net.head.forward(self.net.finish(x))
    }

    /// Convolutions the grouped bottlenecks run in this form (3 per block in form (c)).
    pub fn convolutions(&self) -> usize {
        let grouped = |b: &ResidualBlock| b.conv3.is_some() && b.conv2.conv.groups > 1;
        self.net
            .blocks()
            .zip(&self.blocks)
            .map(|(b, f)| match f {
                Some(f) if f.paths[0].expand.is_some() => 3 * f.paths.len(),
                Some(f) => 2 * f.paths.len() + 1,
                None if grouped(b) => 3,
                None => 0,
            })
            .sum()
    }

    /// Parameters and multiply-accumulates of the grouped bottlenecks' convolutions in this
    /// form, for an input whose stage-entry maps have the given pixel counts per block
    /// (`sizes[k]` = (input pixels, output pixels) of block `k`).
    pub fn grouped_part_cost(&self, sizes: &[(usize, usize)]) -> (usize, usize) {
        let mut params = 0;
        let mut macs = 0;
        for ((block, formed), &(i, o)) in self
            .net
            .stages
            .iter()
            .flatten()
            .zip(&self.blocks)
            .zip(sizes)
        {
            let grouped = block.conv3.is_some() && block.conv2.conv.groups > 1;
            match formed {
                Some(f) => {
                    params += f.params();
                    macs += f.macs(i, o);
                }
                None if grouped => {
                    let (p, m) = grouped_cost(block, i, o);
                    params += p;
                    macs += m;
                }
                None => {}
            }
        }
        (params, macs)
    }
}
