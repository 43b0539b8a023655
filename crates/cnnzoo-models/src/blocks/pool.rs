//! Max and average pooling with PyTorch's options (ceil mode, padding counted or not).
//!
//! One description drives both the forward pass and the summary, so the two cannot disagree.

use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use serde::{Deserialize, Serialize};

use crate::graph::{Graph, Op, Value, Window};
use crate::summary::{FeatureShape, ShapeError, Summary, window_out};

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    /// Maximum of the window.
    Max,
    /// Mean of the window.
    Avg,
}

/// A square pooling window, as `nn.MaxPool2d` / `nn.AvgPool2d` describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zero (average) or minus-infinity (max) padding on every side.
    pub padding: usize,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
    /// Whether padded positions count in the average's divisor (PyTorch's default: yes).
    pub count_include_pad: bool,
}

impl Pool2d {
    /// Max pooling, floor mode.
    pub fn max(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kind: PoolKind::Max,
            kernel,
            stride,
            padding,
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// Average pooling, floor mode, padding counted (PyTorch's defaults).
    pub fn avg(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kind: PoolKind::Avg,
            ..Self::max(kernel, stride, padding)
        }
    }

    /// The same window with ceil-mode output size.
    pub fn ceil(self) -> Self {
        Self {
            ceil_mode: true,
            ..self
        }
    }

    /// Applies the pooling to an NCHW batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = [self.kernel; 2];
        let s = [self.stride; 2];
        let p = [(self.padding, self.padding); 2];
        match self.kind {
            PoolKind::Max => {
                let mut o = MaxPoolOptions::new(k);
                o.stride = s;
                o.padding = p;
                o.ceil_mode = self.ceil_mode;
                cnnzoo_kernels::max_pool2d(x, o)
            }
            PoolKind::Avg => {
                let mut o = AvgPoolOptions::new(k);
                o.stride = s;
                o.padding = p;
                o.ceil_mode = self.ceil_mode;
                o.count_include_pad = self.count_include_pad;
                avg_pool2d(x, o)
            }
        }
    }

    /// Output shape for an input shape, or where it breaks.
    pub fn output_shape(&self, name: &str, x: FeatureShape) -> Result<FeatureShape, ShapeError> {
        let p = (self.padding, self.padding);
        let out = |len| window_out(len, self.kernel, self.stride, p, 1, self.ceil_mode);
        match (out(x[1]), out(x[2])) {
            (Some(h), Some(w)) => Ok([x[0], h, w]),
            _ => Err(ShapeError {
                layer: name.to_string(),
                reason: format!(
                    "a {k}x{k} pooling window does not fit a {}x{} feature map",
                    x[1],
                    x[2],
                    k = self.kernel
                ),
            }),
        }
    }

    /// Appends the pooling to a traced graph, named `name`.
    pub fn trace(&self, name: &str, x: Value, g: &mut Graph) -> Value {
        let window = Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            ceil_mode: self.ceil_mode,
        };
        let op = match self.kind {
            PoolKind::Max => Op::MaxPool(window),
            PoolKind::Avg => Op::AvgPool {
                window,
                count_include_pad: self.count_include_pad,
            },
        };
        g.push(name.to_string(), op, vec![x])
    }

    /// Records the pooling in a summary and returns its output shape.
    pub fn summarize(
        &self,
        name: String,
        x: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let out = self.output_shape(&name, x)?;
        let kind = match self.kind {
            PoolKind::Max => "MaxPool2d",
            PoolKind::Avg => "AvgPool2d",
        };
        s.push(name, kind, out.to_vec(), 0, 0);
        Ok(out)
    }
}

/// Global average pooling: `[N, C, H, W]` to `[N, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn ceil_mode_max_pool_matches_shape_rule() {
        let device = Device::default();
        let x = Tensor::<4>::ones([1, 2, 112, 112], &device);
        let pool = Pool2d::max(3, 2, 0).ceil();
        assert_eq!(pool.forward(x).dims(), [1, 2, 56, 56]);
        assert_eq!(pool.output_shape("p", [2, 112, 112]).unwrap(), [2, 56, 56]);
    }

    #[test]
    fn avg_pool_counts_padding_like_pytorch() {
        let device = Device::default();
        let x = Tensor::<4>::ones([1, 1, 2, 2], &device);
        // 3x3 window, padding 1: the corner window holds 4 ones and 5 zeros -> 4/9.
        let y = Pool2d::avg(3, 1, 1).forward(x);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        for e in v {
            assert!((e - 4.0 / 9.0).abs() < 1e-6, "{e}");
        }
    }

    #[test]
    fn global_avg_pool_is_the_channel_mean() {
        let device = Device::default();
        let data = TensorData::new((0..8).map(|v| v as f32).collect::<Vec<_>>(), [1, 2, 2, 2]);
        let y = global_avg_pool(Tensor::from_data(data, &device));
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v, vec![1.5, 5.5]);
    }
}
