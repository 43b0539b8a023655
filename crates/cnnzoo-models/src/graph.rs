//! The inference forward pass as a graph of named operations, for export (ONNX) and inspection.
//!
//! Every module that runs a forward pass also describes it here through [`Trace`], beside its
//! `forward`, in the same order and with the same parameter names (`stages.0.1.conv2.conv.weight`,
//! the module tree's own paths). The graph is the inference pass: BatchNorm uses its running
//! statistics, dropout is the identity, auxiliary heads are left out. Writers for a file format
//! (`cnnzoo_interop::onnx`) walk [`Graph::nodes`] in order; every input of a node is the graph's
//! input or an earlier node's output.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::summary::join;

/// A tensor flowing through the graph: the input, or the output of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(pub usize);

/// A parameter or buffer of the model, by its path in the module tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// Path in the module tree (`stem.conv.conv.weight`).
    pub name: String,
    /// Shape in Burn's layout (a `Linear` weight is `[in, out]`).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Padding of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPadding {
    /// Zeros on each side: `[top, left, bottom, right]`.
    Explicit([usize; 4]),
    /// Output size `ceil(input / stride)`, the odd pixel at the end (ONNX's `SAME_UPPER`).
    SameUpper,
}

/// An element-wise non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

/// A square pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Side.
    pub kernel: usize,
    /// Step.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
    /// Output size rounded up (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
}

/// One operation; weights are indices into [`Graph::weights`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 2-D convolution, weight `[out, in / groups, kh, kw]`.
    Conv {
        /// Kernel weight.
        weight: usize,
        /// Per-output-channel bias.
        bias: Option<usize>,
        /// Step in (height, width).
        stride: [usize; 2],
        /// Padding.
        padding: ConvPadding,
        /// Dilation in (height, width).
        dilation: [usize; 2],
        /// Channel groups (the ResNeXt cardinality).
        groups: usize,
    },
    /// Inference BatchNorm: `(x - mean) / sqrt(var + epsilon) * gamma + beta`.
    BatchNorm {
        /// Scale.
        gamma: usize,
        /// Shift.
        beta: usize,
        /// Running mean.
        mean: usize,
        /// Running variance.
        var: usize,
        /// Added to the variance.
        epsilon: f64,
    },
    /// Element-wise non-linearity.
    Activation(Activation),
    /// Max pooling over a square window, minus infinity in the padding.
    MaxPool(Window),
    /// Average pooling over a square window.
    AvgPool {
        /// The window.
        window: Window,
        /// Whether padded positions count in the divisor.
        count_include_pad: bool,
    },
    /// Element-wise sum of two inputs of one shape.
    Add,
    /// Product of `[N, C, H, W]` and per-channel gates `[N, C, 1, 1]` (broadcast).
    Mul,
    /// Concatenation along channels.
    Concat,
    /// Mean over height and width, keeping them as 1 x 1: `[N, C, 1, 1]`.
    GlobalAvgPool,
    /// `[N, C, 1, 1]` to `[N, C]`.
    Flatten,
    /// `x W + b` with Burn's `[in, out]` weight.
    Linear {
        /// Weight `[in, out]`.
        weight: usize,
        /// Bias `[out]`.
        bias: Option<usize>,
    },
    /// Every `stride`-th row and column, from the first (`x[:, :, ::s, ::s]`).
    Subsample {
        /// Step.
        stride: usize,
    },
    /// `extra` zero channels appended after the input's (option A's shortcut).
    PadChannels {
        /// Channels added.
        extra: usize,
    },
}

/// One operation applied to earlier values.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Path of the operation in the module tree (`stages.0.1.add`).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Its operands, in the order [`Op`] describes.
    pub inputs: Vec<Value>,
    /// Its result.
    pub output: Value,
}

/// A traced forward pass: `[N, C, H, W]` images in, `[N, classes]` logits out.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Operations in execution order.
    pub nodes: Vec<Node>,
    /// Parameters and buffers the operations read.
    pub weights: Vec<Weight>,
    /// The images.
    pub input: Value,
    /// The logits.
    pub output: Value,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    values: usize,
    error: Option<String>,
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

/// Modules that can describe their inference forward pass as graph operations.
pub trait Trace {
    /// Appends this module's operations on `x` under `prefix` and returns its output.
    fn trace(&self, prefix: &str, x: Value, g: &mut Graph) -> Value;
}

/// Traces `modules` in sequence, each named `prefix.i` (a `Vec` field's keys).
pub fn trace_all<T: Trace>(modules: &[T], prefix: &str, x: Value, g: &mut Graph) -> Value {
    modules
        .iter()
        .enumerate()
        .fold(x, |x, (i, m)| m.trace(&join(prefix, &i.to_string()), x, g))
}

impl Graph {
    /// An empty graph whose input is an image batch.
    pub fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            weights: Vec::new(),
            input: Value(0),
            output: Value(0),
            in_channels: 0,
            num_classes: 0,
            values: 1,
            error: None,
        }
    }

    /// Finishes the graph with `output` as the logits: the input channels are the first
    /// convolution's, the classes the last layer's. Errs when a weight could not be read or
    /// the graph has no convolution.
    pub fn finish(mut self, output: Value) -> Result<Self, String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.output = output;
        let shape = |w: &usize| &self.weights[*w].shape;
        let first = self.nodes.iter().find_map(|n| match &n.op {
            Op::Conv { weight, groups, .. } => Some(shape(weight)[1] * groups),
            _ => None,
        });
        let last = self.nodes.iter().rev().find_map(|n| match &n.op {
            Op::Conv { weight, .. } => Some(shape(weight)[0]),
            Op::Linear { weight, .. } => Some(shape(weight)[1]),
            _ => None,
        });
        match (first, last) {
            (Some(c), Some(k)) => {
                (self.in_channels, self.num_classes) = (c, k);
                Ok(self)
            }
            _ => Err("the traced graph has no convolution".to_string()),
        }
    }

    /// Appends an operation and returns its output.
    pub fn push(&mut self, name: String, op: Op, inputs: Vec<Value>) -> Value {
        let output = Value(self.values);
        self.values += 1;
        self.nodes.push(Node {
            name,
            op,
            inputs,
            output,
        });
        output
    }

    /// Records a parameter under `name` and returns its index.
    pub fn weight<const D: usize>(&mut self, name: String, p: &Param<Tensor<D>>) -> usize {
        self.tensor(name, p.val())
    }

    /// Records a tensor (a buffer such as BatchNorm's running mean) under `name`.
    pub fn tensor<const D: usize>(&mut self, name: String, t: Tensor<D>) -> usize {
        let shape = t.dims().to_vec();
        let data = match t.try_to_vec_as::<f32>() {
            Ok(d) => d,
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("cannot read {name}: {e:?}"));
                Vec::new()
            }
        };
        self.weights.push(Weight { name, shape, data });
        self.weights.len() - 1
    }

    /// A convolution named `prefix` (weights `prefix.weight`, `prefix.bias`).
    pub fn conv(&mut self, prefix: &str, conv: &Conv2d, x: Value) -> Value {
        let weight = self.weight(join(prefix, "weight"), &conv.weight);
        let bias = conv
            .bias
            .as_ref()
            .map(|b| self.weight(join(prefix, "bias"), b));
        let padding = match conv.padding {
            PaddingConfig2d::Valid => ConvPadding::Explicit([0; 4]),
            PaddingConfig2d::Explicit(top, left, bottom, right) => {
                ConvPadding::Explicit([top, left, bottom, right])
            }
            PaddingConfig2d::Same => ConvPadding::SameUpper,
        };
        let op = Op::Conv {
            weight,
            bias,
            stride: conv.stride,
            padding,
            dilation: conv.dilation,
            groups: conv.groups,
        };
        self.push(prefix.to_string(), op, vec![x])
    }

    /// An inference BatchNorm named `prefix`.
    pub fn batch_norm(&mut self, prefix: &str, bn: &BatchNorm, x: Value) -> Value {
        let gamma = self.weight(join(prefix, "gamma"), &bn.gamma);
        let beta = self.weight(join(prefix, "beta"), &bn.beta);
        let mean = self.tensor(join(prefix, "running_mean"), bn.running_mean.value());
        let var = self.tensor(join(prefix, "running_var"), bn.running_var.value());
        let op = Op::BatchNorm {
            gamma,
            beta,
            mean,
            var,
            epsilon: bn.epsilon,
        };
        self.push(prefix.to_string(), op, vec![x])
    }

    /// A non-linearity named `name`.
    pub fn activation(&mut self, name: &str, act: Activation, x: Value) -> Value {
        self.push(name.to_string(), Op::Activation(act), vec![x])
    }

    /// `a + b`, named `name`.
    pub fn add(&mut self, name: &str, a: Value, b: Value) -> Value {
        self.push(name.to_string(), Op::Add, vec![a, b])
    }

    /// `x * gates` (gates `[N, C, 1, 1]`), named `name`.
    pub fn mul(&mut self, name: &str, x: Value, gates: Value) -> Value {
        self.push(name.to_string(), Op::Mul, vec![x, gates])
    }

    /// Channel concatenation of `parts`, named `name` (one part is passed through).
    pub fn concat(&mut self, name: &str, parts: Vec<Value>) -> Value {
        if parts.len() == 1 {
            return parts[0];
        }
        self.push(name.to_string(), Op::Concat, parts)
    }

    /// Global average pooling to `[N, C, 1, 1]`, named `name`.
    pub fn global_avg_pool(&mut self, name: &str, x: Value) -> Value {
        self.push(name.to_string(), Op::GlobalAvgPool, vec![x])
    }

    /// `[N, C, 1, 1]` to `[N, C]`, named `name`.
    pub fn flatten(&mut self, name: &str, x: Value) -> Value {
        self.push(name.to_string(), Op::Flatten, vec![x])
    }

    /// A fully connected layer named `prefix`.
    pub fn linear(&mut self, prefix: &str, fc: &Linear, x: Value) -> Value {
        let weight = self.weight(join(prefix, "weight"), &fc.weight);
        let bias = fc
            .bias
            .as_ref()
            .map(|b| self.weight(join(prefix, "bias"), b));
        self.push(prefix.to_string(), Op::Linear { weight, bias }, vec![x])
    }

    /// Option A's shortcut: subsample by `stride`, then append `extra` zero channels.
    pub fn zero_pad_shortcut(
        &mut self,
        prefix: &str,
        stride: usize,
        extra: usize,
        x: Value,
    ) -> Value {
        let x = if stride > 1 {
            self.push(join(prefix, "subsample"), Op::Subsample { stride }, vec![x])
        } else {
            x
        };
        if extra > 0 {
            self.push(join(prefix, "pad"), Op::PadChannels { extra }, vec![x])
        } else {
            x
        }
    }

    /// How many values the graph defines (the input and every node's output).
    pub fn value_count(&self) -> usize {
        self.values
    }
}
