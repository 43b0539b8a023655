//! The option-A shortcut of the CIFAR ResNets on `[N, C, H, W]` `f32` slices: subsample by
//! the stride (every `stride`-th row and column, from the first), then append zero channels
//! up to the branch's width; forward and backward in one parallel pass each.
//!
//! Composed from tensor operations this was a strided slice, a zero tensor and a
//! concatenation forward, and backward a zeroed input-sized tensor, a copy and a strided
//! `slice_assign`, for two blocks out of nine: most of the "other tensor ops" of a resnet20
//! training step in results/cpu_profile.md (3.4% of its samples before, 0.7% after, with the
//! shortcut itself at 0.7%).

use std::mem::MaybeUninit;

use crate::buffer;

/// The geometry of one option-A shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroPadShape {
    /// Input shape `[N, C, H, W]`.
    pub input: [usize; 4],
    /// Subsampling step of rows and columns (1 or more).
    pub stride: usize,
    /// Zero channels appended after the `C` subsampled ones.
    pub extra: usize,
}

impl ZeroPadShape {
    /// The output shape `[N, C + extra, ceil(H / stride), ceil(W / stride)]`; `None` for a
    /// zero stride.
    pub fn output(&self) -> Option<[usize; 4]> {
        let [n, c, h, w] = self.input;
        let s = self.stride;
        (s > 0).then(|| [n, c + self.extra, h.div_ceil(s), w.div_ceil(s)])
    }
}

/// The shortcut's output for the input `x`. Panics when `x` does not have the input's length
/// or the stride is zero.
pub fn zero_pad_forward(s: ZeroPadShape, x: &[f32]) -> Vec<f32> {
    let [n, c, h, w] = s.input;
    let [_, co, oh, ow] = s
        .output()
        .expect("a zero-pad shortcut needs a positive stride");
    assert_eq!(x.len(), n * c * h * w, "input length");
    let plane = oh * ow;
    buffer::par_written(n * co * plane, plane, |i, out| {
        let (image, channel) = (i / co, i % co);
        if channel >= c {
            out.fill(MaybeUninit::new(0.0));
            return;
        }
        let src = &x[(image * c + channel) * h * w..][..h * w];
        for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
            let from = src[oy * s.stride * w..][..w].iter().step_by(s.stride);
            for (o, v) in row.iter_mut().zip(from) {
                o.write(*v);
            }
        }
    })
}

/// The gradient of the shortcut's input from `grad`, the gradient of its output: `grad`'s
/// first `C` channels at the subsampled positions, zero elsewhere. Panics when `grad` does not
/// have the output's length or the stride is zero.
pub fn zero_pad_backward(s: ZeroPadShape, grad: &[f32]) -> Vec<f32> {
    let [n, c, h, w] = s.input;
    let [_, co, oh, ow] = s
        .output()
        .expect("a zero-pad shortcut needs a positive stride");
    assert_eq!(grad.len(), n * co * oh * ow, "output-gradient length");
    let plane = h * w;
    buffer::par_written(n * c * plane, plane, |i, out| {
        let (image, channel) = (i / c, i % c);
        let src = &grad[(image * co + channel) * oh * ow..][..oh * ow];
        for (y, row) in out.chunks_exact_mut(w).enumerate() {
            row.fill(MaybeUninit::new(0.0));
            if y % s.stride == 0 {
                let from = &src[y / s.stride * ow..][..ow];
                for (o, v) in row.iter_mut().step_by(s.stride).zip(from) {
                    o.write(*v);
                }
            }
        }
    })
}
