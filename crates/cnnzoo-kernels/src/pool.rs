//! Max pooling on `[N, C, H, W]` `f32` slices, one plane per job, in row passes the compiler
//! vectorises: each output row is the maximum of its window's input rows (vertical pass, into
//! a row padded with `-inf`), then of `k` shifted copies of that row (horizontal pass), read
//! every `stride`-th column.
//!
//! Burn's Flex pools through its generic 3-D path and keeps the index of every maximum even
//! when none is asked for. Here ResNet-50's stem pooling (3x3, stride 2) takes a few
//! milliseconds of a batch of 8, several times less than PyTorch's max pooling in the same
//! profile run (results/cpu_profile-resnet50-infer.md).

use std::mem::MaybeUninit;

use crate::buffer;
use crate::simd::{copy_row, map_in_place2};

/// A 2-D max pooling on NCHW data: square or rectangular windows, the same padding before and
/// after (PyTorch's `nn.MaxPool2d` without dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (planes per image).
    pub channels: usize,
    /// Input height and width.
    pub in_size: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Step between windows, down and across.
    pub stride: [usize; 2],
    /// Padding on each side, vertical and horizontal.
    pub padding: [usize; 2],
    /// Round the output size up (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
}

impl PoolGeometry {
    /// The pooling of an `[N, C, H, W]` input (`shape`) with these window, stride, padding
    /// and rounding.
    pub fn nchw(
        [batch, channels, h, w]: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
    ) -> Self {
        PoolGeometry {
            batch,
            channels,
            in_size: [h, w],
            kernel,
            stride,
            padding,
            ceil_mode,
        }
    }

    /// Whether [`max_pool2d`] computes this pooling: non-empty windows and strides, padding at
    /// most half the window (as PyTorch requires, so that every window holds an input element),
    /// and a window that fits the padded input.
    pub fn supported(&self) -> bool {
        (0..2).all(|d| {
            let (k, s, p) = (self.kernel[d], self.stride[d], self.padding[d]);
            k > 0 && s > 0 && 2 * p <= k && self.in_size[d] + 2 * p >= k
        })
    }

    /// Output height and width as PyTorch (and Burn) compute them; `None` when not
    /// [`Self::supported`].
    pub fn out_size(&self) -> Option<[usize; 2]> {
        self.supported().then(|| {
            std::array::from_fn(|d| {
                let (n, k, s, p) = (
                    self.in_size[d],
                    self.kernel[d],
                    self.stride[d],
                    self.padding[d],
                );
                let span = n + 2 * p - k;
                if !self.ceil_mode {
                    return span / s + 1;
                }
                // A last window that would start past the input (in the end padding) is
                // dropped.
                let out = span.div_ceil(s) + 1;
                if (out - 1) * s >= n + p { out - 1 } else { out }
            })
        })
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.in_size[0] * self.in_size[1]
    }
}

/// The larger of `a` and `b`, NaN if either is (a NaN in a window is its maximum, as in
/// PyTorch and Burn).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() { a } else { b }
}

/// Max pooling of `x` (`[N, C, H, W]`) into `[N, C, out_h, out_w]`. Panics unless the
/// geometry is [`PoolGeometry::supported`] and `x` has its length.
pub fn max_pool2d(g: &PoolGeometry, x: &[f32]) -> Vec<f32> {
    let [oh, ow] = g
        .out_size()
        .unwrap_or_else(|| panic!("max pooling does not support {g:?}"));
    assert_eq!(x.len(), g.input_len(), "input length");
    let [h, w] = g.in_size;
    let ([kh, kw], [sh, sw], [ph, pw]) = (g.kernel, g.stride, g.padding);
    let (plane, out_plane) = (h * w, oh * ow);
    let planes = g.batch * g.channels;
    if planes * out_plane == 0 {
        return Vec::new();
    }
    // Columns of the padded row that some window reads, and those the horizontal pass keeps.
    let reach = (ow - 1) * sw + kw;
    let kept = (ow - 1) * sw + 1;
    // Whole planes per job, a few jobs per worker so that none waits long for another.
    let per_job = planes
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(1);
    buffer::par_written(planes * out_plane, per_job * out_plane, |job, out| {
        // Padded row: `pw` columns of -inf, the input row, -inf up to `reach`.
        let mut row = vec![f32::NEG_INFINITY; reach.max(pw + w)];
        let mut across = vec![0.0f32; kept];
        for (i, dst) in out.chunks_mut(out_plane).enumerate() {
            let src = &x[(job * per_job + i) * plane..][..plane];
            for (oy, dst) in dst.chunks_mut(ow).enumerate() {
                // Input rows of the window, clipped to the map (never empty: 2p <= k).
                let top = (oy * sh).saturating_sub(ph);
                let end = (oy * sh + kh - ph).min(h);
                let inner = &mut row[pw..pw + w];
                copy_row(inner, &src[top * w..][..w]);
                for y in top + 1..end {
                    map_in_place2(inner, &src[y * w..][..w], max_nan);
                }
                copy_row(&mut across, &row[..kept]);
                for dx in 1..kw {
                    map_in_place2(&mut across, &row[dx..], max_nan);
                }
                for (ox, d) in dst.iter_mut().enumerate() {
                    *d = MaybeUninit::new(across[ox * sw]);
                }
            }
        }
    })
}
