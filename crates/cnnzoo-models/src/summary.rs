//! Per-layer summary: output shape, parameters and multiply-accumulates of every layer.
//!
//! The summary walks the real module tree (the same structs the forward pass uses), reading
//! parameter shapes without materialising the weights, so counts cannot drift from the model.
//! It also serves as the shape checker: an input that is too small or has the wrong channel
//! count is reported with the layer where it breaks, before any tensor is computed.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use serde::Serialize;

/// A feature-map shape without the batch dimension: `[channels, height, width]`.
pub type FeatureShape = [usize; 3];

/// One row of a summary: a layer that owns parameters or changes the shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRow {
    /// Dotted path of the layer in the module tree (`layer1.0.conv1.conv`).
    pub name: String,
    /// Layer type (`Conv2d`, `BatchNorm`, `Linear`, `MaxPool2d`, ...).
    pub kind: String,
    /// Output shape without the batch dimension.
    pub output: Vec<usize>,
    /// Trainable parameters (running statistics excluded, as in PyTorch).
    pub params: u64,
    /// Multiply-accumulates for one sample (convolutions and linear layers).
    pub macs: u64,
}

/// Where and why an input shape does not fit a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// The layer at which the shape breaks.
    pub layer: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.layer, self.reason)
    }
}

/// A summary being recorded, and the finished table once the walk returns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The layers in forward order.
    pub layers: Vec<LayerRow>,
}

/// Modules that can describe themselves layer by layer for a given input shape.
pub trait Summarize {
    /// Records this module's layers under `prefix` and returns the output shape.
    fn summarize(
        &self,
        prefix: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError>;
}

/// Joins a module path and a field name the way Burn names parameters.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Output length of a sliding window (convolution or pooling), PyTorch's formula.
pub fn window_out(
    len: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    // Saturating: a shape from the command line can be near usize::MAX.
    let span = dilation
        .saturating_mul(kernel.saturating_sub(1))
        .saturating_add(1);
    let padded = len.saturating_add(pad.0).saturating_add(pad.1);
    if padded < span || stride == 0 {
        return None;
    }
    let room = padded - span;
    let mut out = if ceil_mode {
        room.div_ceil(stride) + 1
    } else {
        room / stride + 1
    };
    // PyTorch drops a last window that would start entirely in the end padding.
    if ceil_mode && (out - 1).saturating_mul(stride) >= len.saturating_add(pad.0) {
        out -= 1;
    }
    Some(out)
}

fn explicit_padding(p: &PaddingConfig2d) -> ((usize, usize), (usize, usize)) {
    match p {
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((*top, *bottom), (*left, *right)),
        // cnnzoo builds every layer with explicit padding; the other variants are not used.
        PaddingConfig2d::Valid | PaddingConfig2d::Same => ((0, 0), (0, 0)),
    }
}

fn numel<const D: usize>(p: &Param<Tensor<D>>) -> u64 {
    p.lazy_shape().num_elements() as u64
}

impl Summary {
    /// Adds a row.
    pub fn push(&mut self, name: String, kind: &str, output: Vec<usize>, params: u64, macs: u64) {
        self.layers.push(LayerRow {
            name,
            kind: kind.to_string(),
            output,
            params,
            macs,
        });
    }

    /// Total trainable parameters.
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|r| r.params).sum()
    }

    /// Total multiply-accumulates for one sample.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|r| r.macs).sum()
    }

    /// Records a convolution and returns its output shape.
    pub fn conv2d(
        &mut self,
        name: String,
        conv: &Conv2d,
        x: FeatureShape,
    ) -> Result<FeatureShape, ShapeError> {
        let [out_c, in_per_group, kh, kw] = conv.weight.lazy_shape().dims();
        let in_c = in_per_group * conv.groups;
        if x[0] != in_c {
            return Err(ShapeError {
                layer: name,
                reason: format!("expects {in_c} input channels, got {}", x[0]),
            });
        }
        let (ph, pw) = explicit_padding(&conv.padding);
        let h = window_out(x[1], kh, conv.stride[0], ph, conv.dilation[0], false);
        let w = window_out(x[2], kw, conv.stride[1], pw, conv.dilation[1], false);
        let (Some(h), Some(w)) = (h, w) else {
            return Err(ShapeError {
                layer: name,
                reason: format!(
                    "a {kh}x{kw} kernel does not fit a {}x{} feature map",
                    x[1], x[2]
                ),
            });
        };
        let params = numel(&conv.weight) + conv.bias.as_ref().map_or(0, numel);
        let macs = [out_c, h, w, in_per_group, kh, kw]
            .iter()
            .fold(1u64, |m, &d| m.saturating_mul(d as u64));
        self.push(name, "Conv2d", vec![out_c, h, w], params, macs);
        Ok([out_c, h, w])
    }

    /// Records a batch normalisation (shape preserving).
    pub fn batch_norm(&mut self, name: String, bn: &BatchNorm, x: FeatureShape) -> FeatureShape {
        let params = numel(&bn.gamma) + numel(&bn.beta);
        self.push(name, "BatchNorm", x.to_vec(), params, 0);
        x
    }

    /// Records a fully connected layer on `features` inputs and returns its output width.
    pub fn linear(
        &mut self,
        name: String,
        linear: &Linear,
        features: usize,
    ) -> Result<usize, ShapeError> {
        let weight = numel(&linear.weight) as usize;
        let out = linear
            .bias
            .as_ref()
            .map_or(weight / features.max(1), |b| numel(b) as usize);
        if features.checked_mul(out) != Some(weight) {
            return Err(ShapeError {
                layer: name,
                reason: format!("expects {} input features, got {features}", weight / out),
            });
        }
        let params = weight as u64 + linear.bias.as_ref().map_or(0, numel);
        self.push(name, "Linear", vec![out], params, weight as u64);
        Ok(out)
    }
}

/// Counts trainable parameters through Burn's module visitor, leaving out BatchNorm running
/// statistics (Burn visits them like parameters; PyTorch counts them as buffers).
pub fn count_trainable<M: Module>(module: &M) -> u64 {
    struct Counter {
        path: Vec<String>,
        total: u64,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let running = self
                .path
                .last()
                .is_some_and(|n| n == "running_mean" || n == "running_var");
            if !running {
                self.total += param.lazy_shape().num_elements() as u64;
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        total: 0,
    };
    module.visit(&mut counter);
    counter.total
}

impl Summary {
    /// Rows merged to the first `depth` components of their dotted names (blocks instead of
    /// layers at depth 3 for `stages.0.0.conv1.conv`); consecutive rows of one group merge.
    pub fn grouped(&self, depth: usize) -> Vec<LayerRow> {
        let mut out: Vec<LayerRow> = Vec::new();
        for row in &self.layers {
            let key: String = row
                .name
                .split('.')
                .take(depth.max(1))
                .collect::<Vec<_>>()
                .join(".");
            match out.last_mut() {
                Some(last) if last.name == key => {
                    last.output.clone_from(&row.output);
                    last.params += row.params;
                    last.macs += row.macs;
                    if last.kind != row.kind {
                        last.kind = "Block".into();
                    }
                }
                _ => out.push(LayerRow {
                    name: key,
                    ..row.clone()
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_out_matches_pytorch() {
        // 224 -> 112 for a 7x7/2 conv with padding 3.
        assert_eq!(window_out(224, 7, 2, (3, 3), 1, false), Some(112));
        // GoogLeNet's ceil-mode max pool: 112 -> 56, 28 -> 14, 14 -> 7 (2x2/2), 7x7 stays.
        assert_eq!(window_out(112, 3, 2, (0, 0), 1, true), Some(56));
        assert_eq!(window_out(14, 2, 2, (0, 0), 1, true), Some(7));
        // Inception-v3's floor-mode pool: 147 -> 73.
        assert_eq!(window_out(147, 3, 2, (0, 0), 1, false), Some(73));
        // ceil mode never starts a window inside the end padding: 5 with k3 s2 p1 -> 3.
        assert_eq!(window_out(5, 3, 2, (1, 1), 1, true), Some(3));
        assert_eq!(window_out(2, 3, 1, (0, 0), 1, false), None);
    }
}
