//! Direct convolution for kernels over few channels (ResNet-20's 16-64 channels,
//! DenseNet's growth-rate convolutions, ResNeXt's groups), with AVX2 + FMA: no im2col buffer
//! and no GEMM packing, which cost as much as the arithmetic at these sizes.
//!
//! Each input plane is zero-padded once and read in a "wide" layout: output position
//! `q = oy * wp + ox` runs over the padded width `wp`, so tap `(ky, kx)` of every position sits
//! at `q + ky * wp + kx` and a run of positions is one unaligned vector load per tap. The
//! columns `ox >= ow` are computed and dropped, which buys unit-stride loads everywhere. The
//! zero columns between rows are shared (the right padding of one row is the left padding of
//! the next), so a 3x3 costs 1 extra column per row, not 2.
//! Backward-data is the same kernel on the flipped, transposed weights; backward-weight reduces
//! over the same wide layout.
//!
//! A strided convolution (ResNet's downsampling 3x3s, the 7x7 stem) splits each padded plane
//! into its `sy * sx` phases (the pixels at `(sy * r + py, sx * c + px)`): tap `(ky, kx)` of
//! output `(oy, ox)` is pixel `(oy + ky / sy, ox + kx / sx)` of phase `(ky % sy, kx % sx)`, so
//! the same kernel runs on unit-stride loads with a tap table pointing into the phases. Its
//! input gradient stays on the GEMM path (it is a transposed convolution, not a forward one).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps, _mm256_castps256_ps128, _mm256_extractf128_ps,
    _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
};

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer;
use crate::geometry::{ConvGeometry, Epilogue, check_forward};
use crate::microkernel::{self, LANES, simd_available};
use crate::simd::{copy_row, copy_strided};

/// Output channels per register tile.
const OCB: usize = microkernel::ROWS;
/// Wide positions per register tile.
const TILE: usize = microkernel::COLS;
/// Largest weight tensor per group (elements) for which the direct forward and backward-data
/// are used: beyond it the GEMM's cache blocking wins (measured with `examples/conv_bench.rs`:
/// direct is ahead up to ResNet-50's 256-channel 3x3, behind at 512).
const MAX_GROUP_WEIGHTS: usize = 256 * 256 * 9;
/// The same bound for strided convolutions, whose phases spread each tile's reads over four
/// times the memory: ahead up to 64 channels (ResNet-20's downsampling, the 7x7 stem, grouped
/// 3x3s), level at ResNet-50's 128-channel 3x3, behind at 256.
const MAX_GROUP_WEIGHTS_STRIDED: usize = 64 * 64 * 9;
/// The same bound for the direct weight gradient, whose passes re-read each image's planes
/// once per block of output channels: ahead at 64 channels, behind at 128.
const MAX_GROUP_WEIGHTS_WGRAD: usize = 64 * 64 * 9;
/// Bytes of padded planes one weight-gradient pass keeps (about half of a Zen 3 / Skylake
/// core's L2).
const WEIGHT_PASS_BYTES: usize = 256 * 1024;
/// Most kernel taps (kh * kw) the offset table holds.
const MAX_TAPS: usize = 64;
/// Largest stride the phase split takes (4 x 4 phases per plane).
const MAX_STRIDE: usize = 4;

/// Whether the direct kernels can compute this convolution's forward pass and weight gradient:
/// a non-empty input, stride at most 4, no dilation, a kernel larger than 1x1 (at most 64
/// taps) with padding below its size on each side, on a CPU with AVX2 and FMA. The input
/// gradient also needs stride 1 ([`supports_input_gradient`]).
pub fn supports(g: &ConvGeometry) -> bool {
    g.validate().is_ok()
        && !g.in_size.contains(&0)
        && g.stride.iter().all(|s| (1..=MAX_STRIDE).contains(s))
        && g.dilation == [1, 1]
        && g.kernel != [1, 1]
        && g.kernel[0] * g.kernel[1] <= MAX_TAPS
        && (0..2).all(|a| g.padding[a].0 < g.kernel[a] && g.padding[a].1 < g.kernel[a])
        && simd_available()
}

/// Whether [`backward_data`] can compute this convolution's input gradient: [`supports`] and
/// stride 1.
pub fn supports_input_gradient(g: &ConvGeometry) -> bool {
    supports(g) && g.stride == [1, 1]
}

/// Whether [`crate::conv`] should take the direct path for the forward pass: it is supported
/// and the weights are small enough for the GEMM's blocking not to matter. (With fewer images
/// than workers the kernel spreads blocks of output channels.)
pub fn applies(g: &ConvGeometry) -> bool {
    let bound = if g.stride == [1, 1] {
        MAX_GROUP_WEIGHTS
    } else {
        MAX_GROUP_WEIGHTS_STRIDED
    };
    supports(g) && g.cout_g() * g.k() <= bound
}

/// Whether [`crate::conv`] should take the direct path for the input gradient: as
/// [`applies`], at stride 1.
pub fn applies_to_input_gradient(g: &ConvGeometry) -> bool {
    applies(g) && g.stride == [1, 1]
}

/// Whether [`crate::conv`] should take the direct path for the weight gradient: it has its
/// own size bound, and it spreads images over the workers, so it needs one per worker.
pub fn applies_to_weight_gradient(g: &ConvGeometry) -> bool {
    applies(g)
        && g.cout_g() * g.k() <= MAX_GROUP_WEIGHTS_WGRAD
        && g.batch >= rayon::current_num_threads()
}

/// The wide layout of one convolution's padded planes.
#[derive(Debug, Clone, Copy)]
struct Wide {
    /// Input height and width.
    h: usize,
    w: usize,
    /// Padding before the first row and column.
    top: usize,
    left: usize,
    /// Stride; above 1 the planes are split into phases.
    stride: [usize; 2],
    /// Rows per phase (strided layout only).
    hq: usize,
    /// Row stride of the wide layout: at stride 1 the width plus the larger of the two
    /// paddings, else the output width plus the taps' reach into the next column of a phase.
    wp: usize,
    /// Output height and width.
    oh: usize,
    ow: usize,
    /// Wide positions computed: `oh * wp` rounded up to whole tiles.
    qr: usize,
    /// Elements per padded plane, including the tail the last tile's taps read.
    plane: usize,
    /// Offset of each kernel tap from its output position.
    taps: [usize; MAX_TAPS],
    ntaps: usize,
}

impl Wide {
    fn new(g: &ConvGeometry) -> Self {
        let [h, w] = g.in_size;
        let [kh, kw] = g.kernel;
        let [(top, bottom), (left, right)] = g.padding;
        if g.stride != [1, 1] {
            return Self::phases(g);
        }
        // One run of zero columns between rows serves as the right padding of a row and the
        // left padding of the next: a tap reading past a row's end wraps into the next row's
        // first `min(left, right)` columns, which are zero.
        let wp = w + left.max(right);
        let [oh, ow] = [h + top + bottom + 1 - kh, w + left + right + 1 - kw];
        let q = oh * wp;
        let qr = q.div_ceil(TILE) * TILE;
        let plane = qr + (kh - 1) * wp + kw - 1;
        let mut taps = [0; MAX_TAPS];
        let ntaps = kh * kw;
        for (i, t) in taps.iter_mut().take(ntaps).enumerate() {
            *t = (i / kw) * wp + i % kw;
        }
        Self {
            h,
            w,
            top,
            left,
            stride: [1, 1],
            hq: 0,
            wp,
            oh,
            ow,
            qr,
            plane,
            taps,
            ntaps,
        }
    }

    /// The strided layout: each padded plane as its `sy * sx` phases, each `hq` rows of `wp`
    /// columns (every output reads within its own phase rows, so no shared zero column is
    /// needed), then a zero tail for the last tile's reads.
    fn phases(g: &ConvGeometry) -> Self {
        let [h, w] = g.in_size;
        let [kh, kw] = g.kernel;
        let [sy, sx] = g.stride;
        let [oh, ow] = g.out_size().expect("validated geometry");
        let (hq, wp) = (oh + (kh - 1) / sy, ow + (kw - 1) / sx);
        let phase = hq * wp;
        let qr = (oh * wp).div_ceil(TILE) * TILE;
        let mut taps = [0; MAX_TAPS];
        let ntaps = kh * kw;
        for (i, t) in taps.iter_mut().take(ntaps).enumerate() {
            let (ky, kx) = (i / kw, i % kw);
            *t = ((ky % sy) * sx + kx % sx) * phase + (ky / sy) * wp + kx / sx;
        }
        Self {
            h,
            w,
            top: g.padding[0].0,
            left: g.padding[1].0,
            stride: g.stride,
            hq,
            wp,
            oh,
            ow,
            qr,
            // The largest tap offset is below sy * sx * phase, so a tail of qr covers every
            // read of the last tile.
            plane: sy * sx * phase + qr,
            taps,
            ntaps,
        }
    }

    fn taps(&self) -> &[usize] {
        &self.taps[..self.ntaps]
    }

    /// Copies the planes `src` (`[c, h, w]`) into the interiors of the padded planes `dst`
    /// (`[c, plane]`), whose borders stay zero.
    fn pad_planes(&self, src: &[f32], dst: &mut [f32]) {
        if self.stride != [1, 1] {
            return self.split_planes(src, dst);
        }
        for (s, d) in src
            .chunks_exact(self.h * self.w)
            .zip(dst.chunks_exact_mut(self.plane))
        {
            for (y, row) in s.chunks_exact(self.w).enumerate() {
                copy_row(
                    &mut d[(y + self.top) * self.wp + self.left..][..self.w],
                    row,
                );
            }
        }
    }

    /// The strided layout's [`Self::pad_planes`]: writes every pixel of every phase of `dst`
    /// (`[c, plane]`) from `src` (`[c, h, w]`), zero where it falls in the padding; the tails
    /// stay zero.
    fn split_planes(&self, src: &[f32], dst: &mut [f32]) {
        let [sy, sx] = self.stride;
        let phase = self.hq * self.wp;
        // Per column phase px: its columns c0..c1 fall inside the input (ix = sx * c + px -
        // left < w), c0 at input column `first`. Worked out once per call, not per row (its
        // divisions and the copy of a row are of a size).
        let cols: [(usize, usize, usize); MAX_STRIDE] = std::array::from_fn(|px| {
            let c0 = self.left.saturating_sub(px).div_ceil(sx).min(self.wp);
            let c1 = (self.w + self.left)
                .saturating_sub(px)
                .div_ceil(sx)
                .clamp(c0, self.wp);
            (c0, c1, (sx * c0 + px).saturating_sub(self.left))
        });
        for (s, d) in src
            .chunks_exact(self.h * self.w)
            .zip(dst.chunks_exact_mut(self.plane))
        {
            for (p, dp) in d[..sy * sx * phase].chunks_exact_mut(phase).enumerate() {
                let (py, (c0, c1, first)) = (p / sx, cols[p % sx]);
                for (r, row) in dp.chunks_exact_mut(self.wp).enumerate() {
                    // Padded row sy * r + py is input row sy * r + py - top, if any.
                    let iy = (sy * r + py).wrapping_sub(self.top);
                    if iy >= self.h {
                        row.fill(0.0);
                        continue;
                    }
                    let srow = &s[iy * self.w..][..self.w];
                    row[..c0].fill(0.0);
                    row[c1..].fill(0.0);
                    if c0 < c1 {
                        copy_strided(&mut row[c0..c1], &srow[first..], sx);
                    }
                }
            }
        }
    }

    /// Writes the valid columns of the wide rows `src` (`[c, qr]`) to all of `dst`
    /// (`[c, oh, ow]`; `src` may hold more channels than `dst`) through `epilogue`: `dst`
    /// holds output channels `first..` and starts at element `offset` of the whole output.
    fn narrow_planes(
        &self,
        src: &[f32],
        dst: &mut [MaybeUninit<f32>],
        epilogue: &Epilogue,
        first: usize,
        offset: usize,
    ) {
        let out_plane = self.oh * self.ow;
        let planes = dst
            .chunks_exact_mut(out_plane)
            .zip(src.chunks_exact(self.qr));
        for (c, (d, s)) in planes.enumerate() {
            for (oy, row) in d.chunks_exact_mut(self.ow).enumerate() {
                let at = offset + c * out_plane + oy * self.ow;
                epilogue.write(row, &s[oy * self.wp..][..self.ow], first + c, at);
            }
        }
    }

    /// Spreads the planes `src` (`[c, oh, ow]`) into wide rows `dst` (`[c, qr]`), whose
    /// dropped columns stay zero.
    fn widen_planes(&self, src: &[f32], dst: &mut [f32]) {
        for (s, d) in src
            .chunks_exact(self.oh * self.ow)
            .zip(dst.chunks_exact_mut(self.qr))
        {
            for (oy, row) in s.chunks_exact(self.ow).enumerate() {
                copy_row(&mut d[oy * self.wp..][..self.ow], row);
            }
        }
    }
}

/// Weights `[O, C/g, kh, kw]` regrouped per group into blocks of [`OCB`] output channels,
/// `[block][ci][tap][OCB]`, zero for the channels past the last one.
fn pack_weights(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let taps = g.kernel[0] * g.kernel[1];
    let blocks = cout_g.div_ceil(OCB);
    let mut packed = vec![0.0; g.groups * blocks * cin_g * taps * OCB];
    for gi in 0..g.groups {
        for oc in 0..cout_g {
            let (b, j) = (oc / OCB, oc % OCB);
            let src = &weight[(gi * cout_g + oc) * cin_g * taps..][..cin_g * taps];
            let base = (gi * blocks + b) * cin_g * taps * OCB;
            for (i, v) in src.iter().enumerate() {
                packed[base + i * OCB + j] = *v;
            }
        }
    }
    packed
}

/// Forward convolution (no bias) through the direct kernel; same contract as
/// [`crate::conv::conv2d_forward`]. Panics unless [`supports`] holds.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_with(g, x, weight, Epilogue::default())
}

/// [`forward`] with `epilogue` applied as each output row is written.
pub fn forward_with(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
    assert!(supports(g), "direct convolution does not support {g:?}");
    check_forward(g, x, weight, &epilogue);
    if g.output_len() == 0 {
        return Vec::new();
    }
    let wd = Wide::new(g);
    let packed = pack_weights(g, weight);
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let blocks = cout_g.div_ceil(OCB);
    let block_len = cin_g * wd.ntaps * OCB;
    let in_plane = wd.h * wd.w;
    let out_plane = wd.oh * wd.ow;
    let mut out = buffer::uninit(g.output_len());
    if g.batch < rayon::current_num_threads() {
        // Fewer images than workers (batch-1 inference): the pool shares out each image's
        // groups and blocks of output channels instead, all reading its padded planes.
        let mut xp = vec![0.0f32; g.in_channels * wd.plane];
        let images = out
            .chunks_mut(g.out_channels * out_plane)
            .zip(x.chunks(g.in_channels * in_plane));
        for (n, (y, xi)) in images.enumerate() {
            wd.pad_planes(xi, &mut xp);
            let xp = &xp;
            y.par_chunks_mut(cout_g * out_plane)
                .enumerate()
                .for_each(|(gi, yg)| {
                    let xg = &xp[gi * cin_g * wd.plane..][..cin_g * wd.plane];
                    yg.par_chunks_mut(OCB * out_plane)
                        .enumerate()
                        .for_each_init(
                            || vec![0.0f32; OCB * wd.qr],
                            |yw, (b, yb)| {
                                let wb = &packed[(gi * blocks + b) * block_len..][..block_len];
                                conv_block(&wd, xg, cin_g, wb, yw, 0..wd.qr);
                                let first = gi * cout_g + b * OCB;
                                let at = n * g.out_channels * out_plane + first * out_plane;
                                wd.narrow_planes(yw, yb, &epilogue, first, at);
                            },
                        );
                });
        }
        // SAFETY: every block of every group of every image was narrowed into its channels,
        // which together are the whole output.
        return unsafe { buffer::assume_init(out) };
    }
    out.par_chunks_mut(g.out_channels * out_plane)
        .zip(x.par_chunks(g.in_channels * in_plane))
        .enumerate()
        .with_min_len(g.batch.div_ceil(rayon::current_num_threads().max(1)))
        .for_each_init(
            || {
                (
                    vec![0.0f32; cin_g * wd.plane],
                    vec![0.0f32; blocks * OCB * wd.qr],
                )
            },
            |(xp, yw), (n, (y, xi))| {
                for gi in 0..g.groups {
                    wd.pad_planes(&xi[gi * cin_g * in_plane..][..cin_g * in_plane], xp);
                    // A few tiles at a time through every block, so the input rows they read
                    // stay in L1 from one block to the next.
                    let step = 4 * TILE;
                    for q0 in (0..wd.qr).step_by(step) {
                        let q1 = (q0 + step).min(wd.qr);
                        for b in 0..blocks {
                            let wb = &packed[(gi * blocks + b) * block_len..][..block_len];
                            let yb = &mut yw[b * OCB * wd.qr..][..OCB * wd.qr];
                            conv_block(&wd, xp, cin_g, wb, yb, q0..q1);
                        }
                    }
                    let yg = &mut y[gi * cout_g * out_plane..][..cout_g * out_plane];
                    let at = (n * g.out_channels + gi * cout_g) * out_plane;
                    wd.narrow_planes(yw, yg, &epilogue, gi * cout_g, at);
                }
            },
        );
    // SAFETY: every image's chunk was written whole: each group's `narrow` writes all
    // cout_g * oh * ow of its channels.
    unsafe { buffer::assume_init(out) }
}

/// Gradient with respect to the input; same contract as
/// [`crate::conv::conv2d_backward_data`]. A stride-1 convolution's input gradient is the
/// convolution of the output gradient with the flipped, transposed kernel and the complementary
/// padding `k - 1 - p`, so it runs through [`forward`].
pub fn backward_data(g: &ConvGeometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(
        supports_input_gradient(g),
        "direct input gradient does not support {g:?}"
    );
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    let [kh, kw] = g.kernel;
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let t = ConvGeometry {
        in_channels: g.out_channels,
        in_size: g.out_size().expect("validated geometry"),
        out_channels: g.in_channels,
        padding: [
            (kh - 1 - g.padding[0].0, kh - 1 - g.padding[0].1),
            (kw - 1 - g.padding[1].0, kw - 1 - g.padding[1].1),
        ],
        ..*g
    };
    // flipped[gi * cin_g + ci][oc][ky][kx] = weight[gi * cout_g + oc][ci][kh-1-ky][kw-1-kx].
    let mut flipped = vec![0.0f32; weight.len()];
    for gi in 0..g.groups {
        for oc in 0..cout_g {
            for ci in 0..cin_g {
                let src = &weight[((gi * cout_g + oc) * cin_g + ci) * kh * kw..][..kh * kw];
                let dst = &mut flipped[((gi * cin_g + ci) * cout_g + oc) * kh * kw..][..kh * kw];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    forward(&t, dy, &flipped)
}

/// Gradient with respect to the weight; same contract as
/// [`crate::conv::conv2d_backward_weight`]. Each worker sums a fixed run of images (so the
/// result does not depend on scheduling), a few images per pass so that small maps still give
/// the register tiles long sums, then the partial sums are added.
pub fn backward_weight(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(supports(g), "direct convolution does not support {g:?}");
    assert_eq!(x.len(), g.input_len(), "input length");
    assert_eq!(dy.len(), g.output_len(), "output-gradient length");
    let wlen = g.weight_len();
    if g.batch == 0 || dy.is_empty() {
        return vec![0.0; wlen];
    }
    let wd = Wide::new(g);
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let blocks = cout_g.div_ceil(OCB);
    let row = cin_g * wd.ntaps;
    let in_plane = wd.h * wd.w;
    let out_plane = wd.oh * wd.ow;
    // Per image and group: cin_g padded planes, then blocks * OCB wide output-gradient rows.
    let (xp_len, dy_len) = (cin_g * wd.plane, blocks * OCB * wd.qr);
    // Images per pass: as many as keep one group's planes within about half of L2.
    let per_pass = (WEIGHT_PASS_BYTES / ((xp_len + dy_len) * 4)).max(1);
    // Offset of every (input channel, tap) pair's run in one image's padded planes.
    let offsets: Vec<usize> = (0..cin_g)
        .flat_map(|ci| wd.taps().iter().map(move |t| ci * wd.plane + t))
        .collect();
    let total = buffer::sum_over_image_runs(g.batch, |images| {
        let pass = per_pass.min(images.len());
        // Per group: [blocks * OCB, cin_g * taps].
        let mut acc = vec![0.0f32; g.groups * blocks * OCB * row];
        let mut xp = vec![0.0f32; pass * xp_len];
        let mut dyw = vec![0.0f32; pass * dy_len];
        for first in images.clone().step_by(pass) {
            let n_pass = pass.min(images.end - first);
            for gi in 0..g.groups {
                for i in 0..n_pass {
                    let n = first + i;
                    let xg = &x[(n * g.in_channels + gi * cin_g) * in_plane..][..cin_g * in_plane];
                    wd.pad_planes(xg, &mut xp[i * xp_len..][..xp_len]);
                    let dyg =
                        &dy[(n * g.out_channels + gi * cout_g) * out_plane..][..cout_g * out_plane];
                    wd.widen_planes(dyg, &mut dyw[i * dy_len..][..dy_len]);
                }
                let accg = &mut acc[gi * blocks * OCB * row..][..blocks * OCB * row];
                let images = Images {
                    count: n_pass,
                    xp: &xp,
                    xp_len,
                    dyw: &dyw,
                    dy_len,
                };
                for (b, accb) in accg.chunks_exact_mut(OCB * row).enumerate() {
                    weight_block(&wd, &images, b * OCB * wd.qr, &offsets, accb);
                }
            }
        }
        acc
    });
    // Drop the padding channels of the last block of each group.
    let mut dw = Vec::with_capacity(wlen);
    for gi in 0..g.groups {
        dw.extend_from_slice(&total[gi * blocks * OCB * row..][..cout_g * row]);
    }
    dw
}

/// One pass of images for the weight gradient: `count` images' padded planes (`xp_len` apart)
/// and wide output-gradient rows (`dy_len` apart).
struct Images<'a> {
    count: usize,
    xp: &'a [f32],
    xp_len: usize,
    dyw: &'a [f32],
    dy_len: usize,
}

/// One block of [`OCB`] output channels over wide positions `qs`: `yw` (`[OCB, qr]`) from the
/// padded planes `xp` (`[cin, plane]`) and the block's packed weights.
fn conv_block(
    wd: &Wide,
    xp: &[f32],
    cin: usize,
    w: &[f32],
    yw: &mut [f32],
    qs: std::ops::Range<usize>,
) {
    assert!(xp.len() >= cin * wd.plane && w.len() == cin * wd.ntaps * OCB);
    assert!(yw.len() == OCB * wd.qr && wd.qr.is_multiple_of(TILE));
    assert!(qs.start.is_multiple_of(TILE) && qs.end.is_multiple_of(TILE) && qs.end <= wd.qr);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `supports` checked AVX2 and FMA; the asserts above bound every access: the
    // last tile of the last channel reads up to (cin - 1) * plane + qr - 1 + taps.max(), which
    // is below cin * plane by the definition of `plane`.
    unsafe {
        conv_block_avx2(xp, wd.plane, cin, wd.taps(), w, yw, wd.qr, qs);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_block_avx2(
    xp: &[f32],
    plane: usize,
    cin: usize,
    taps: &[usize],
    w: &[f32],
    yw: &mut [f32],
    qr: usize,
    qs: std::ops::Range<usize>,
) {
    let (xp, w, yw) = (xp.as_ptr(), w.as_ptr(), yw.as_mut_ptr());
    let mut q = qs.start;
    while q < qs.end {
        // SAFETY: bounded as `conv_block` states; cin >= 1 and taps.len() >= 2 (supports()
        // excludes 1x1 kernels), so both count-down loops run at least once.
        unsafe { microkernel::tap_tile(xp.add(q), plane, cin, taps, w, yw.add(q), qr) };
        q += TILE;
    }
}

/// Adds one block's weight gradient over a pass of images,
/// `acc[j][i] += sum_n sum_q dyw[n][block + j * qr + q] * xp[n][offsets[i] + q]`, for the
/// block's [`OCB`] output channels `j` and every (input channel, tap) pair `i`.
fn weight_block(wd: &Wide, im: &Images, block: usize, offsets: &[usize], acc: &mut [f32]) {
    let row = offsets.len();
    assert!(acc.len() == OCB * row && wd.qr.is_multiple_of(LANES) && im.count > 0);
    assert!(block + OCB * wd.qr <= im.dy_len && im.dyw.len() >= im.count * im.dy_len);
    assert!(offsets.iter().all(|&o| o + wd.qr <= im.xp_len));
    assert!(im.xp.len() >= im.count * im.xp_len);
    let mut i = 0;
    while i < row {
        let n = (row - i).min(3);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supports` checked AVX2 and FMA; for every image n < count, the runs
        // n * xp_len + offsets[i] + (0..qr) lie in `xp` and n * dy_len + block + j * qr + (0..qr)
        // in `dyw` (asserted above).
        unsafe {
            let out = &mut acc[i..];
            match n {
                3 => weight_tile_avx2::<3>(im, block, &offsets[i..i + 3], wd.qr, out, row),
                2 => weight_tile_avx2::<2>(im, block, &offsets[i..i + 2], wd.qr, out, row),
                _ => weight_tile_avx2::<1>(im, block, &offsets[i..i + 1], wd.qr, out, row),
            }
        }
        i += n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_tile_avx2<const T: usize>(
    im: &Images,
    block: usize,
    offsets: &[usize],
    qr: usize,
    acc: &mut [f32],
    row: usize,
) {
    let mut sums = [[_mm256_setzero_ps(); T]; OCB];
    for n in 0..im.count {
        // SAFETY (all pointer arithmetic here): bounded as `weight_block` states.
        let dp = unsafe { im.dyw.as_ptr().add(n * im.dy_len + block) };
        let xp = unsafe { im.xp.as_ptr().add(n * im.xp_len) };
        let mut q = 0;
        while q < qr {
            // The T input runs first, then one output-gradient row at a time: 12 sums, 3 inputs
            // and 1 gradient fill the 16 registers without spilling.
            let mut xv = [_mm256_setzero_ps(); T];
            for (r, &o) in xv.iter_mut().zip(offsets) {
                *r = unsafe { _mm256_loadu_ps(xp.add(o + q)) };
            }
            for (j, sj) in sums.iter_mut().enumerate() {
                let d = unsafe { _mm256_loadu_ps(dp.add(j * qr + q)) };
                for (s, x) in sj.iter_mut().zip(&xv) {
                    *s = _mm256_fmadd_ps(d, *x, *s);
                }
            }
            q += LANES;
        }
    }
    for (j, sj) in sums.iter().enumerate() {
        for (t, s) in sj.iter().enumerate() {
            acc[j * row + t] += horizontal_sum(*s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn horizontal_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_hadd_ps(s, s);
    _mm_cvtss_f32(_mm_hadd_ps(s, s))
}
