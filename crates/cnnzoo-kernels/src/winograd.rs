//! Winograd F(4x4, 3x3) for stride-1 3x3 convolutions: each 4x4 block of outputs costs 36
//! multiplications per input-output channel pair instead of 144.
//!
//! The output is cut into 4x4 tiles, each read from a 6x6 input patch. Per tile and channel
//! the patch `d` becomes `V = Bᵀ d B` and the kernel `g` becomes `U = G g Gᵀ` (both 6x6); the
//! 36 element positions `ξ` of those matrices are then 36 independent matrix products over
//! channels, `M[ξ] = U[ξ] (K x C) · V[ξ] (C x tiles)`, and each tile's outputs are
//! `Aᵀ M A` (4x4). The transforms add and scale by small constants and run eight tiles per
//! AVX vector: the tiles of a row are split out of the input row by in-register shuffles
//! (tile `t`'s columns are `4t..4t + 6`), transformed, and the results interleaved back into
//! output rows the same way, where the convolution's epilogue (bias, residual, ReLU) is
//! applied. On maps with 2 or 4 tiles per row (8x8, 16x16) several tile rows share a vector
//! ([`rows_per_vector`]) instead of each filling a quarter or a half of one. `V` is laid out
//! `[ξ][C][tiles]`, so the products run on the direct kernels' register tile (4 output
//! channels x 24 tiles, `direct::product_tile`) with no packing. A block of tiles (a few hundred KiB of `V`) is transformed, multiplied and written
//! out by one worker before the next, so its transformed patches stay in cache.
//!
//! The input gradient of a stride-1 3x3 convolution is another one (flipped, transposed
//! weights, complementary padding), so it runs through the same code. The weight gradient
//! stays on the direct kernel: a Winograd version (`dU = Σ (A dy Aᵀ) ⊙ V`, then `Gᵀ dU G`)
//! measured no faster. The arithmetic differs from a direct sum in rounding only (about 1e-5
//! of the output's magnitude at 256 channels, see tests/winograd.rs), as in cuDNN's and
//! oneDNN's Winograd convolutions.
//!
//! Training transforms the weights on every call (they change every step). Inference keeps
//! them transformed ([`forward_weights`], [`forward_transformed`], kept per weight tensor by
//! `crate::weight_cache`), which makes Winograd pay on more layers ([`applies_transformed`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_blend_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_loadu_ps,
    _mm256_permute2f128_ps, _mm256_permutevar8x32_ps, _mm256_set1_ps, _mm256_setr_epi32,
    _mm256_setr_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_sub_ps,
    _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use crate::buffer::{self, Shared};
use crate::conv::{ConvGeometry, Epilogue};
use crate::simd::{copy_row, prefetch};

/// Output tile side.
const M: usize = 4;
/// Input patch side (tile + kernel - 1).
const T: usize = 6;
/// Positions of a transformed patch.
const XI: usize = T * T;
/// Tiles per vector in the row transforms.
const LANES: usize = 8;
/// Channels ahead of the input transform whose planes it asks the cache for: it reads each
/// image's plane of a channel, a short run of memory (1 KiB on a 16x16 map), then jumps to the
/// next image.
const AHEAD: usize = 2;
/// Length of each padded row in `Scratch::rows`: room for the interior of a row of up to 4
/// tiles (at most 18 columns with padding) and for whole-vector reads.
const ROW_STRIDE: usize = 24;
/// Fewest output tiles in a batch for [`applies`]. Measured in alternating pairs of runs
/// (`examples/winograd_bound.rs`, results/winograd_bound.md): ResNet-50's 128-channel 3x3 at
/// batch 1 (49 tiles) is faster through Winograd in most pairs, its 256-channel one at batch 3
/// (48 tiles) in almost all; at batch 1 (16 tiles) and batch 2 (32 tiles) the direct kernel
/// wins most pairs.
const MIN_TILES: usize = 48;
/// Output channels per product tile.
const R: usize = crate::direct::PRODUCT_ROWS;
/// Tiles per product tile: a block's tile count is padded to a multiple of it.
const COLS: usize = crate::direct::PRODUCT_COLS;
/// Bytes of transformed input one block keeps: written by the input transform and read back
/// by the 36 products, so it should stay in the core's L2 (1 MiB on the machine the bounds
/// were measured on, where blocks of 2 and 4 MiB measured slower).
const BLOCK_BYTES: usize = 512 * 1024;

/// Whether [`forward_with`] and [`backward_data`] can compute this convolution: a 3x3 kernel,
/// stride 1, no dilation, no groups, padding at most 2 on each side (so that the input
/// gradient's complementary padding is not negative), non-empty.
pub fn supports(g: &ConvGeometry) -> bool {
    g.validate().is_ok()
        && g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.padding.iter().all(|&(a, b)| a <= 2 && b <= 2)
        && g.output_len() > 0
        && g.input_len() > 0
        && crate::direct::simd_available()
}

/// Whether [`crate::conv`] should take this path (forward and input gradient): it is
/// supported, both sides have 32 to 256 channels, the output map is at least 8x8 and the batch
/// has at least `MIN_TILES` (48) tiles. Below 32 channels the direct kernel is as fast (the
/// transforms cost as much as the multiplications saved); on smaller maps a 4x4 tile wastes
/// too much of itself; with 512 channels, or few tiles, transforming the weights (every call:
/// they change from step to step in training) and streaming them (4 times the kernel's size)
/// costs more than the multiplications saved. Measured with `examples/conv_bench.rs`
/// (results/conv_bench.md). Inference, which keeps the transformed weights, has its own
/// wider bounds ([`applies_transformed`]).
pub fn applies(g: &ConvGeometry) -> bool {
    within(g, 256, 8, MIN_TILES)
}

/// Whether inference, which keeps the transformed weights ([`forward_weights`]) from call to
/// call, should take [`forward_transformed`]: it is supported, both sides have 32 to 512
/// channels, the output map is at least 7x7 and the batch has at least 16 tiles. Without the
/// weight transform on every call, ResNet-50's 512-channel 7x7 layers at batch 8 and its
/// 256-channel 14x14 layers at batch 1 are faster here than on the paths [`applies`] leaves
/// them to, while its 512-channel layers at batch 1 (4 tiles) are not
/// (`examples/winograd_bound.rs`, results/winograd_bound.md).
pub fn applies_transformed(g: &ConvGeometry) -> bool {
    within(g, 512, 7, 16)
}

/// Whether `g` is supported with 32 to `max_channels` channels on both sides, output maps of
/// at least `min_side` on each side and at least `min_tiles` tiles in the batch.
fn within(g: &ConvGeometry, max_channels: usize, min_side: usize, min_tiles: usize) -> bool {
    let [oh, ow] = g.out_size().unwrap_or([0, 0]);
    supports(g)
        && (32..=max_channels).contains(&g.in_channels)
        && (32..=max_channels).contains(&g.out_channels)
        && oh.min(ow) >= min_side
        && g.batch * oh.div_ceil(M) * ow.div_ceil(M) >= min_tiles
}

/// Values in [`forward_weights`]' result for this geometry.
pub fn transformed_len(g: &ConvGeometry) -> usize {
    g.out_channels.next_multiple_of(R) * XI * g.in_channels
}

/// The geometry of one Winograd convolution on NCHW data.
#[derive(Debug, Clone, Copy)]
struct Plan {
    batch: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    top: usize,
    left: usize,
    /// Tiles per column and per row of one image.
    th: usize,
    tw: usize,
}

impl Plan {
    fn new(g: &ConvGeometry) -> Self {
        let [oh, ow] = g.out_size().expect("validated geometry");
        Plan {
            batch: g.batch,
            cin: g.in_channels,
            cout: g.out_channels,
            h: g.in_size[0],
            w: g.in_size[1],
            oh,
            ow,
            top: g.padding[0].0,
            left: g.padding[1].0,
            th: oh.div_ceil(M),
            tw: ow.div_ceil(M),
        }
    }
}

/// `U = G g Gᵀ` of every kernel `g = weight[o][i]`, or of the flipped kernel of
/// `weight[i][o]` when `transpose` (the input gradient's kernel), laid out for
/// [`crate::direct::product_tile`]: `[O / 4][36][I][4]`, output channels padded with zeros to
/// a multiple of 4.
fn transform_weights(weight: &[f32], outs: usize, ins: usize, transpose: bool) -> Vec<f32> {
    let quad_len = XI * ins * R;
    buffer::par_written(outs.div_ceil(R) * quad_len, quad_len, |q, uq| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supports` (checked by every caller) requires AVX2 and FMA.
        unsafe {
            transform_quad(weight, outs, ins, transpose, q, uq)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (weight, outs, ins, transpose, q, uq);
            unreachable!("Winograd convolution needs x86-64 with AVX2 and FMA");
        }
    })
}

/// The kernels of output channels `4q..4q + 4` into their quad of `U` (every element of `uq`
/// written), two input channels times four output channels per vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn transform_quad(
    weight: &[f32],
    outs: usize,
    ins: usize,
    transpose: bool,
    q: usize,
    uq: &mut [MaybeUninit<f32>],
) {
    for i0 in (0..ins).step_by(2) {
        let mut k = [[L8([0.0; 8]); 3]; 3];
        for l in 0..8 {
            let (i, o) = (i0 + l / R, q * R + l % R);
            if i >= ins || o >= outs {
                continue;
            }
            for (a, row) in k.iter_mut().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    v.0[l] = if transpose {
                        weight[(i * outs + o) * 9 + (2 - a) * 3 + (2 - b)]
                    } else {
                        weight[(o * ins + i) * 9 + a * 3 + b]
                    };
                }
            }
        }
        // G k (6x3), column by column, then (G k) Gᵀ row by row.
        let cols: [[L8; T]; 3] = std::array::from_fn(|b| kernel_rows([k[0][b], k[1][b], k[2][b]]));
        let lanes = R * (ins - i0).min(2);
        for r in 0..T {
            let row = kernel_rows([cols[0][r], cols[1][r], cols[2][r]]);
            for (c, v) in row.into_iter().enumerate() {
                uq[((r * T + c) * ins + i0) * R..][..lanes].write_copy_of_slice(&v.0[..lanes]);
            }
        }
    }
}

/// `G k` for one column `k` of a kernel.
#[inline(always)]
fn kernel_rows([k0, k1, k2]: [L8; 3]) -> [L8; T] {
    let s = k0 + k2;
    let e = (1.0 / 24.0) * k0 + (1.0 / 6.0) * k2;
    [
        0.25 * k0,
        (-1.0 / 6.0) * (s + k1),
        (1.0 / 6.0) * (k1 - s),
        e + (1.0 / 12.0) * k1,
        e - (1.0 / 12.0) * k1,
        k2,
    ]
}

/// Eight lanes of `f32` for the weight transform (two input channels times a quad of output
/// channels): element-wise arithmetic the compiler vectorises inside [`transform_quad`]. (The
/// data transforms use AVX intrinsics instead: through arrays like this one the compiler
/// scalarised their shuffles.)
#[derive(Clone, Copy)]
struct L8([f32; 8]);

impl std::ops::Add for L8 {
    type Output = L8;
    #[inline(always)]
    fn add(self, o: L8) -> L8 {
        L8(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
}

impl std::ops::Sub for L8 {
    type Output = L8;
    #[inline(always)]
    fn sub(self, o: L8) -> L8 {
        L8(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
}

impl std::ops::Mul<L8> for f32 {
    type Output = L8;
    #[inline(always)]
    fn mul(self, o: L8) -> L8 {
        L8(std::array::from_fn(|l| self * o.0[l]))
    }
}

/// Eight values from `s` (at least that long).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load8(s: &[f32]) -> __m256 {
    let s = &s[..8];
    // SAFETY: `s` holds 8 values.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// `v` to the first eight values of `d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn store8(d: &mut [f32], v: __m256) {
    let d = &mut d[..8];
    // SAFETY: `d` holds 8 values.
    unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) }
}

/// `Bᵀ d` for eight columns `d` of patches at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn input_column([d0, d1, d2, d3, d4, d5]: [__m256; T]) -> [__m256; T] {
    let (two, four, five) = (
        _mm256_set1_ps(2.0),
        _mm256_set1_ps(4.0),
        _mm256_set1_ps(5.0),
    );
    let (s34, d42) = (_mm256_add_ps(d3, d4), _mm256_sub_ps(d4, d2));
    [
        _mm256_fmadd_ps(four, d0, _mm256_fnmadd_ps(five, d2, d4)),
        _mm256_fnmadd_ps(four, _mm256_add_ps(d1, d2), s34),
        _mm256_fmadd_ps(four, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3)),
        _mm256_fmadd_ps(two, _mm256_sub_ps(d3, d1), d42),
        _mm256_fmadd_ps(two, _mm256_sub_ps(d1, d3), d42),
        _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5)),
    ]
}

/// `Aᵀ m` for eight columns `m` of products at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn output_column([d0, d1, d2, d3, d4, d5]: [__m256; T]) -> [__m256; M] {
    let (two, four, eight) = (
        _mm256_set1_ps(2.0),
        _mm256_set1_ps(4.0),
        _mm256_set1_ps(8.0),
    );
    let (a, b) = (_mm256_add_ps(d1, d2), _mm256_sub_ps(d1, d2));
    let (c, e) = (_mm256_add_ps(d3, d4), _mm256_sub_ps(d3, d4));
    [
        _mm256_add_ps(_mm256_add_ps(d0, a), c),
        _mm256_fmadd_ps(two, e, b),
        _mm256_fmadd_ps(four, c, a),
        _mm256_add_ps(_mm256_fmadd_ps(eight, e, b), d5),
    ]
}

/// The six vectors `src[s0 + j * ss + t..][..8]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load6(src: &[f32], s0: usize, ss: usize) -> [__m256; T] {
    [
        load8(&src[s0..]),
        load8(&src[s0 + ss..]),
        load8(&src[s0 + 2 * ss..]),
        load8(&src[s0 + 3 * ss..]),
        load8(&src[s0 + 4 * ss..]),
        load8(&src[s0 + 5 * ss..]),
    ]
}

/// Defines `$name`, which applies `$column` to vectors: the inputs are
/// `src[s0 + j * ss..][..n]`, the outputs `dst[d0 + r * ds..][..n]` (`n` a multiple of 8). (A
/// macro because a target-feature function cannot be passed as a closure.)
macro_rules! columns {
    ($(#[$doc:meta])* $name:ident, $column:ident) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $name(
            src: &[f32],
            (s0, ss): (usize, usize),
            dst: &mut [f32],
            (d0, ds): (usize, usize),
            n: usize,
        ) {
            for t in (0..n).step_by(8) {
                let o = $column(load6(src, s0 + t, ss));
                for (r, v) in o.into_iter().enumerate() {
                    store8(&mut dst[d0 + r * ds + t..], v);
                }
            }
        }
    };
}

columns!(
    /// [`input_column`] over vectors.
    input_columns,
    input_column
);
columns!(
    /// [`output_column`] over vectors.
    output_columns,
    output_column
);

/// One worker's buffers.
struct Scratch {
    /// A padded input row (its padding columns stay zero: only the interior is written) and
    /// a row of zeros, both long enough for whole groups of eight tiles.
    row: Vec<f32>,
    zeros: Vec<f32>,
    /// One output row of the block's tiles before the epilogue.
    yrow: Vec<f32>,
    /// Padded input rows of the tile rows that share a vector ([`rows_per_vector`]), each
    /// `ROW_STRIDE` long, for padding other than 1 column; their padding stays zero, as in
    /// `row`.
    rows: Vec<f32>,
    /// Patches of one channel transformed along their rows, `[6][6][tiles]`.
    half: Vec<f32>,
    /// Transformed input of the block, `[36][C][tiles]`.
    v: Vec<f32>,
    /// Products, `[36][K chunk][tiles]`.
    m: Vec<f32>,
    /// Products of one channel transformed along their columns, `[4][6][tiles]`.
    f: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers, in field order, to at least the lengths `need` (growth adds zeros;
    /// what earlier calls left is finite and lands only in columns whose results are dropped),
    /// and zeroes the padded row, whose padding must be zero for this call's geometry.
    fn fit(&mut self, need: &[usize; 8]) {
        let bufs = [
            &mut self.row,
            &mut self.zeros,
            &mut self.yrow,
            &mut self.rows,
            &mut self.half,
            &mut self.v,
            &mut self.m,
            &mut self.f,
        ];
        for (have, &len) in bufs.into_iter().zip(need) {
            if have.len() < len {
                have.resize(len, 0.0);
            }
        }
        self.row.fill(0.0);
        self.rows.fill(0.0);
    }
}

thread_local! {
    /// Each worker's buffers, kept from call to call: allocating and zeroing them per call
    /// cost as much as the input transform.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            row: Vec::new(),
            zeros: Vec::new(),
            yrow: Vec::new(),
            rows: Vec::new(),
            half: Vec::new(),
            v: Vec::new(),
            m: Vec::new(),
            f: Vec::new(),
        })
    };
}

/// One block: tiles `tiles` of the whole batch, numbered row by row through the images (tile
/// `t` is in tile row `gr = t / tw`, which is tile row `gr % th` of image `gr / th`), times
/// output channels `chans`.
#[derive(Debug, Clone)]
struct Block {
    tiles: std::ops::Range<usize>,
    chans: std::ops::Range<usize>,
    /// Tiles in the block padded to the product tile: the row length of V and M (V's padding
    /// columns hold finite leftovers; their products are dropped).
    np: usize,
    /// Row length of the patch buffers and of the output transform's: room for a last group
    /// of eight tiles that runs past `n`.
    ps: usize,
    /// Output channels padded to the product tile: the rows of M.
    kc: usize,
}

impl Block {
    fn new(tiles: std::ops::Range<usize>, chans: std::ops::Range<usize>) -> Self {
        let np = tiles.len().next_multiple_of(COLS);
        let kc = chans.len().next_multiple_of(R);
        Block {
            tiles,
            chans,
            np,
            ps: np + 8,
            kc,
        }
    }
}

/// The block's tiles as runs within tile rows: `(image, tile row in the image, first tile,
/// end tile, index of the first in the block)`.
fn runs(p: &Plan, b: &Block) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> {
    let (tw, th, tiles) = (p.tw, p.th, b.tiles.clone());
    (tiles.start / tw..tiles.end.div_ceil(tw)).map(move |gr| {
        let a = tiles.start.max(gr * tw) - gr * tw;
        let e = tiles.end.min((gr + 1) * tw) - gr * tw;
        (gr / th, gr % th, a, e, gr * tw + a - tiles.start)
    })
}

/// One block start to finish: input transform, products, output transform.
#[cfg(target_arch = "x86_64")]
fn run_block(
    p: &Plan,
    x: &[f32],
    u: &[f32],
    b: &Block,
    s: &mut Scratch,
    e: &Epilogue,
    out: Shared,
) {
    assert!(crate::direct::simd_available());
    // SAFETY: the CPU has AVX2 and FMA (checked above; `supports` requires them).
    unsafe {
        transform_input(p, x, b, s);
        multiply(p, u, b, s);
        transform_output(p, b, s, e, out);
    }
}

/// Without x86-64 nothing reaches here: [`supports`] is false.
#[cfg(not(target_arch = "x86_64"))]
fn run_block(_: &Plan, _: &[f32], _: &[f32], _: &Block, _: &mut Scratch, _: &Epilogue, _: Shared) {
    unreachable!("Winograd convolution needs x86-64 with AVX2 and FMA");
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` of every patch `d` of the block, channel by channel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn transform_input(p: &Plan, x: &[f32], b: &Block, s: &mut Scratch) {
    let (np, ps) = (b.np, b.ps);
    let shared = rows_per_vector(p, b);
    let plane = p.h * p.w;
    let images = b.tiles.start / (p.th * p.tw)..(b.tiles.end - 1) / (p.th * p.tw) + 1;
    for c in 0..p.cin {
        if c + AHEAD < p.cin {
            for img in images.clone() {
                prefetch(
                    x.as_ptr().wrapping_add((img * p.cin + c + AHEAD) * plane),
                    plane,
                );
            }
        }
        match shared {
            Some(k) => shared_rows_input(p, x, b, s, c, k),
            None => own_rows_input(p, x, b, s, c),
        }
        // Then along the columns (Bᵀ (d B)) into V[ξ][c].
        for j in 0..T {
            let dst = ((j * p.cin + c) * np, T * p.cin * np);
            input_columns(&s.half, (j * ps, T * ps), &mut s.v, dst, np);
        }
    }
}

/// [`transform_input`]'s row transform (`d B`) of channel `c`, each tile row on vectors of
/// its own: eight tiles of the row at a time, split out of one padded copy of each patch row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn own_rows_input(p: &Plan, x: &[f32], b: &Block, s: &mut Scratch, c: usize) {
    let ps = b.ps;
    for (img, ty, a, e, local) in runs(p, b) {
        let plane = &x[(img * p.cin + c) * p.h * p.w..][..p.h * p.w];
        for i in 0..T {
            let y = (M * ty + i) as isize - p.top as isize;
            let row = if (0..p.h as isize).contains(&y) {
                let src = &plane[y as usize * p.w..][..p.w];
                copy_row(&mut s.row[p.left..p.left + p.w], src);
                &s.row
            } else {
                &s.zeros
            };
            // Eight tiles at a time: their columns j = 0..4, then 4..6 (the next
            // tile's first two), transformed along the row (d B) in registers.
            for g in 0..(e - a).div_ceil(8) {
                let (at, col) = (local + 8 * g, M * a + 32 * g);
                let [q0, q1, q2, q3] = deinterleave4(&row[col..][..32]);
                // Columns 4 and 5 are the next tile's 0 and 1: lanes moved down by one,
                // the ninth tile's value in the last.
                let next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
                let q4 = _mm256_blend_ps::<0x80>(
                    _mm256_permutevar8x32_ps(q0, next),
                    _mm256_set1_ps(row[col + 32]),
                );
                let q5 = _mm256_blend_ps::<0x80>(
                    _mm256_permutevar8x32_ps(q1, next),
                    _mm256_set1_ps(row[col + 33]),
                );
                let d = input_column([q0, q1, q2, q3, q4, q5]);
                for (j, v) in d.into_iter().enumerate() {
                    store8(&mut s.half[(i * T + j) * ps + at..], v);
                }
            }
        }
    }
}

/// How many tile rows share a vector of eight tiles in the row transforms: 2 when an image's
/// rows have 4 tiles (13- to 16-wide output maps), 4 when they have 2 (5- to 8-wide), if the
/// block holds whole tile rows (blocks are cut at multiples of 24 tiles, so they do); `None`
/// otherwise, and a tile row then fills its own vectors (one row at a time filled a half or a
/// quarter of each vector).
fn rows_per_vector(p: &Plan, b: &Block) -> Option<usize> {
    let whole = b.tiles.start.is_multiple_of(p.tw) && b.tiles.len().is_multiple_of(p.tw);
    (matches!(p.tw, 2 | 4) && whole).then_some(LANES / p.tw)
}

/// [`transform_input`]'s row transform (`d B`) of channel `c` when `k` tile rows share each
/// vector ([`rows_per_vector`]): for each of the six patch rows, the `k` tile rows' padded
/// rows are read (in place for padding 1, else from a copy in `s.rows`) and the eight tiles'
/// columns split out of them at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn shared_rows_input(p: &Plan, x: &[f32], b: &Block, s: &mut Scratch, c: usize, k: usize) {
    let (ps, tile_rows, first) = (b.ps, b.tiles.len() / p.tw, b.tiles.start / p.tw);
    // Column 4 of a tile row's last tile: the first past the row's tiles.
    let span = M * p.tw;
    let next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    // The usual padding of 1 around a map of whole tiles (ResNet-20's 16x16 and 8x8 stages):
    // the padded row's vectors come from the map's row itself, its first vector moved up one
    // lane behind a zero, without copying the row.
    let in_place = p.left == 1 && p.w == span;
    let (zero, behind) = (
        _mm256_setzero_ps(),
        _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6),
    );
    for group in 0..tile_rows.div_ceil(k) {
        for i in 0..T {
            // Per tile row: its padded row's columns 0..8 and 8..16, and columns span and
            // span + 1; all zero above or below the map, or past the block (those products
            // are dropped).
            let mut vectors = [[zero; 2]; LANES / 2];
            let mut ends = [[0.0f32; 2]; LANES / 2];
            for r in 0..k {
                let gr = first + group * k + r;
                let y = (M * (gr % p.th) + i) as isize - p.top as isize;
                if group * k + r >= tile_rows || !(0..p.h as isize).contains(&y) {
                    continue;
                }
                let plane = &x[((gr / p.th) * p.cin + c) * p.h * p.w..][..p.h * p.w];
                let src = &plane[y as usize * p.w..][..p.w];
                if in_place {
                    let moved = _mm256_permutevar8x32_ps(load8(src), behind);
                    vectors[r][0] = _mm256_blend_ps::<1>(moved, zero);
                    if k == 2 {
                        vectors[r][1] = load8(&src[7..]);
                    }
                    ends[r] = [src[p.w - 1], 0.0];
                } else {
                    let row = &mut s.rows[r * ROW_STRIDE..][..ROW_STRIDE];
                    copy_row(&mut row[p.left..p.left + p.w], src);
                    vectors[r] = [load8(row), load8(&row[8..])];
                    ends[r] = [row[span], row[span + 1]];
                }
            }
            let end = |r: usize, col: usize| ends[r][col];
            // Lane order: the k rows' tiles one row after the other, as the block numbers them.
            let [q0, q1, q2, q3] = if k == 2 {
                let [[a, b], [c, d]] = [vectors[0], vectors[1]];
                deinterleave(a, b, c, d)
            } else {
                let [a, b, c, d] = vectors.map(|v| v[0]);
                deinterleave(a, b, c, d)
            };
            // Columns 4 and 5 are the next tile's 0 and 1, except for the last tile of each
            // row, which takes them from its own row.
            let (q4, q5) = if k == 2 {
                let e = |col| _mm256_setr_ps(0., 0., 0., end(0, col), 0., 0., 0., end(1, col));
                (
                    _mm256_blend_ps::<0x88>(_mm256_permutevar8x32_ps(q0, next), e(0)),
                    _mm256_blend_ps::<0x88>(_mm256_permutevar8x32_ps(q1, next), e(1)),
                )
            } else {
                let e = |col| {
                    let [a, b, c, d] = [0, 1, 2, 3].map(|r| end(r, col));
                    _mm256_setr_ps(0., a, 0., b, 0., c, 0., d)
                };
                (
                    _mm256_blend_ps::<0xAA>(_mm256_permutevar8x32_ps(q0, next), e(0)),
                    _mm256_blend_ps::<0xAA>(_mm256_permutevar8x32_ps(q1, next), e(1)),
                )
            };
            let d = input_column([q0, q1, q2, q3, q4, q5]);
            for (j, v) in d.into_iter().enumerate() {
                store8(&mut s.half[(i * T + j) * ps + group * LANES..], v);
            }
        }
    }
}

/// [`transform_output`]'s row transform (`(Aᵀ M) A`) of output channel `k` when `rows` tile
/// rows share each vector ([`rows_per_vector`]), each tile row's outputs written through the
/// epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn shared_rows_output(
    p: &Plan,
    b: &Block,
    s: &mut Scratch,
    (epilogue, out): (&Epilogue, Shared),
    k: usize,
    rows: usize,
) {
    let (ps, tile_rows, first) = (b.ps, b.tiles.len() / p.tw, b.tiles.start / p.tw);
    let width = (M * p.tw).min(p.ow);
    // Rows of whole tiles without an epilogue (training's convolutions, input gradients) go
    // from registers to the output: one or two vectors per row, no staging row and no call.
    let from_registers = epilogue.is_identity() && width == M * p.tw;
    let per_row = M * p.tw / LANES;
    for group in 0..tile_rows.div_ceil(rows) {
        for i in 0..M {
            // `f`'s rows are `ps` >= n + 8 long, so 8 values from a group's first tile fit.
            let y = output_column(load6(&s.f, i * T * ps + group * LANES, ps));
            let vectors = interleaved(y);
            if !from_registers {
                for (j, v) in vectors.iter().enumerate() {
                    store8(&mut s.yrow[LANES * j..], *v);
                }
            }
            for r in 0..rows.min(tile_rows - group * rows) {
                let gr = first + group * rows + r;
                let oy = M * (gr % p.th) + i;
                if oy >= p.oh {
                    continue;
                }
                let at = ((gr / p.th) * p.cout + k) * p.oh * p.ow + oy * p.ow;
                // SAFETY: row `oy` of channel `k` of image `gr / th` is inside the output
                // (`width` <= ow), and only this block writes it.
                let dst = unsafe { out.slice(at, width) };
                if from_registers {
                    for (j, v) in vectors[r * per_row..][..per_row].iter().enumerate() {
                        // SAFETY: `dst` holds `width` = 8 * per_row values.
                        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().cast::<f32>().add(8 * j), *v) };
                    }
                } else {
                    epilogue.write(dst, &s.yrow[r * M * p.tw..][..width], k, at);
                }
            }
        }
    }
}

/// The 32 values `s[..32]` (eight runs of four) as four vectors: vector `q` holds element
/// `q` of each run.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn deinterleave4(s: &[f32]) -> [__m256; 4] {
    assert!(s.len() >= 32);
    // SAFETY: s holds 32 values.
    let a: [__m256; 4] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(s.as_ptr().add(8 * k)) });
    deinterleave(a[0], a[1], a[2], a[3])
}

/// Eight runs of four values, two per vector (`a0` holds runs 0 and 1, `a3` runs 6 and 7), as
/// four vectors: vector `q` holds element `q` of each run.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn deinterleave(a0: __m256, a1: __m256, a2: __m256, a3: __m256) -> [__m256; 4] {
    let a = [a0, a1, a2, a3];
    // Runs 0|4, 1|5, 2|6, 3|7 in the two halves, then a 4x4 transpose within each half.
    let b0 = _mm256_permute2f128_ps::<0x20>(a[0], a[2]);
    let b1 = _mm256_permute2f128_ps::<0x31>(a[0], a[2]);
    let b2 = _mm256_permute2f128_ps::<0x20>(a[1], a[3]);
    let b3 = _mm256_permute2f128_ps::<0x31>(a[1], a[3]);
    transpose4(b0, b1, b2, b3)
}

/// The inverse of [`deinterleave4`]: four vectors (element `q` of eight runs) as the runs,
/// stored to `d[..32]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn interleave4(q: [__m256; 4], d: &mut [f32]) {
    assert!(d.len() >= 32);
    for (k, v) in interleaved(q).into_iter().enumerate() {
        // SAFETY: d holds 32 values.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr().add(8 * k), v) };
    }
}

/// [`interleave4`]'s runs as four vectors (runs 0 and 1 in the first, 6 and 7 in the last).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn interleaved(q: [__m256; 4]) -> [__m256; 4] {
    let [r0, r1, r2, r3] = transpose4(q[0], q[1], q[2], q[3]);
    // r0 holds runs 0|4, r1 runs 1|5, r2 runs 2|6, r3 runs 3|7.
    [
        _mm256_permute2f128_ps::<0x20>(r0, r1),
        _mm256_permute2f128_ps::<0x20>(r2, r3),
        _mm256_permute2f128_ps::<0x31>(r0, r1),
        _mm256_permute2f128_ps::<0x31>(r2, r3),
    ]
}

/// A 4x4 transpose within each 128-bit half of four vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn transpose4(b0: __m256, b1: __m256, b2: __m256, b3: __m256) -> [__m256; 4] {
    let t0 = _mm256_unpacklo_ps(b0, b1);
    let t1 = _mm256_unpackhi_ps(b0, b1);
    let t2 = _mm256_unpacklo_ps(b2, b3);
    let t3 = _mm256_unpackhi_ps(b2, b3);
    [
        _mm256_shuffle_ps::<0x44>(t0, t2),
        _mm256_shuffle_ps::<0xEE>(t0, t2),
        _mm256_shuffle_ps::<0x44>(t1, t3),
        _mm256_shuffle_ps::<0xEE>(t1, t3),
    ]
}

/// `M[ξ] = U[ξ] V[ξ]` for the 36 positions, four output channels at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn multiply(p: &Plan, u: &[f32], b: &Block, s: &mut Scratch) {
    let (cin, np, kc) = (p.cin, b.np, b.kc);
    for xi in 0..XI {
        let v = &s.v[xi * cin * np..][..cin * np];
        // Column tiles outside, channel quads inside: the tile's columns of V (cin x 24) stay
        // in L1 while every quad of U streams past them.
        for t in (0..np).step_by(COLS) {
            for q in 0..kc / R {
                let uq = &u[((b.chans.start / R + q) * XI + xi) * cin * R..][..cin * R];
                let m = &mut s.m[(xi * kc + q * R) * np + t..];
                crate::direct::product_tile(&v[t..], np, cin, uq, m, np);
            }
        }
    }
}

/// `Aᵀ M A` of every tile and channel of the block, written to the output through the
/// epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn transform_output(p: &Plan, b: &Block, s: &mut Scratch, epilogue: &Epilogue, out: Shared) {
    let (np, ps, kc) = (b.np, b.ps, b.kc);
    let out_plane = p.oh * p.ow;
    let shared = rows_per_vector(p, b);
    for (kk, k) in b.chans.clone().enumerate() {
        // Along the columns (Aᵀ M) into `f` ([4][6][tiles]), then along the rows in
        // registers, eight tiles at a time, interleaved into output rows.
        for j in 0..T {
            let src = ((j * kc + kk) * np, T * kc * np);
            output_columns(&s.m, src, &mut s.f, (j * ps, T * ps), np);
        }
        if let Some(rows) = shared {
            shared_rows_output(p, b, s, (epilogue, out), k, rows);
            continue;
        }
        for (img, ty, a, e, local) in runs(p, b) {
            // Output columns of the run.
            let width = (M * e).min(p.ow) - M * a;
            for i in 0..M.min(p.oh - M * ty) {
                for g in 0..(e - a).div_ceil(8) {
                    // `f`'s rows are `ps` >= n + 8 long, so 8 values from `at` < n fit.
                    let at = local + 8 * g;
                    let y = output_column(load6(&s.f, i * T * ps + at, ps));
                    interleave4(y, &mut s.yrow[32 * g..][..32]);
                }
                let at = (img * p.cout + k) * out_plane + (M * ty + i) * p.ow + M * a;
                // SAFETY: these columns of row `M * ty + i` of channel `k` of image `img` are
                // inside the output, and only this block writes them.
                let dst = unsafe { out.slice(at, width) };
                epilogue.write(dst, &s.yrow[..width], k, at);
            }
        }
    }
}

/// The convolution of `x` with transformed weights `u` (`[36, K, C]`).
fn convolve(p: &Plan, x: &[f32], u: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    let out_len = p.batch * p.cout * p.oh * p.ow;
    let mut out = buffer::uninit(out_len);
    let ptr = Shared(out.as_mut_ptr());
    let tiles = p.batch * p.th * p.tw;
    // Whole product tiles per block, as many as fit BLOCK_BYTES of V but no more than an even
    // share per worker.
    let threads = rayon::current_num_threads().max(1);
    let fit = (BLOCK_BYTES / (4 * XI * p.cin)) / COLS * COLS;
    let per_block = fit
        .min(tiles.div_ceil(threads).next_multiple_of(COLS))
        .max(COLS);
    let blocks = tiles.div_ceil(per_block);
    // Fewer blocks than workers (small maps, batch 1): output channels are split as well.
    let chunks = if blocks >= threads {
        1
    } else {
        threads.div_ceil(blocks).min(p.cout.div_ceil(16)).max(1)
    };
    let chunk = p.cout.div_ceil(chunks).next_multiple_of(R);
    let chunks = p.cout.div_ceil(chunk);
    let np_max = per_block;
    let ps_max = np_max + 8;
    // A run's last group of eight tiles reads up to 32 columns past the row's last tile.
    let row_len = M * p.tw + 40;
    let need = [
        row_len,
        row_len,
        row_len,
        LANES / 2 * ROW_STRIDE,
        XI * ps_max,
        XI * p.cin * np_max,
        XI * chunk * np_max,
        T * M * ps_max,
    ];
    (0..blocks * chunks).into_par_iter().for_each(|item| {
        SCRATCH.with_borrow_mut(|s| {
            s.fit(&need);
            let (b, ch) = (item / chunks, item % chunks);
            let range = b * per_block..((b + 1) * per_block).min(tiles);
            let chans = ch * chunk..((ch + 1) * chunk).min(p.cout);
            run_block(p, x, u, &Block::new(range, chans), s, epilogue, ptr);
        })
    });
    // SAFETY: the blocks cover every tile of every image and the chunks every output channel;
    // each writes every output position of its tiles that lies inside the map.
    unsafe { buffer::assume_init(out) }
}

/// Forward convolution through Winograd F(4x4, 3x3) with `epilogue` applied as each output is
/// written; same contract as [`crate::conv::conv2d_forward_with`]. Panics unless
/// [`supports`] holds.
pub fn forward_with(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
    forward_transformed(g, x, &forward_weights(g, weight), epilogue)
}

/// The weights `[O, C, 3, 3]` transformed for [`forward_transformed`] (`U = G g Gᵀ` of every
/// kernel, 36 values each, laid out for the products): what [`forward_with`] computes on every
/// call, and what inference, whose weights do not change, can keep. Panics unless
/// [`supports`] holds and `weight` has the geometry's length.
pub fn forward_weights(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    assert!(supports(g), "Winograd convolution does not support {g:?}");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    transform_weights(weight, g.out_channels, g.in_channels, false)
}

/// [`forward_with`] from weights transformed by [`forward_weights`] for a geometry with the
/// same channels. Panics unless [`supports`] holds and the operands have the geometry's
/// lengths.
pub fn forward_transformed(g: &ConvGeometry, x: &[f32], u: &[f32], epilogue: Epilogue) -> Vec<f32> {
    assert!(supports(g), "Winograd convolution does not support {g:?}");
    assert_eq!(u.len(), transformed_len(g), "transformed weight length");
    crate::conv::check_input(g, x, &epilogue);
    convolve(&Plan::new(g), x, u, &epilogue)
}

/// Gradient with respect to the input through Winograd F(4x4, 3x3); same contract as
/// [`crate::conv::conv2d_backward_data`]. Panics unless [`supports`] holds.
pub fn backward_data(g: &ConvGeometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(supports(g), "Winograd convolution does not support {g:?}");
    assert_eq!(dy.len(), g.output_len(), "output-gradient length");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    let t = ConvGeometry {
        in_channels: g.out_channels,
        in_size: g.out_size().expect("validated geometry"),
        out_channels: g.in_channels,
        padding: [
            (2 - g.padding[0].0, 2 - g.padding[0].1),
            (2 - g.padding[1].0, 2 - g.padding[1].1),
        ],
        ..*g
    };
    let u = transform_weights(weight, g.in_channels, g.out_channels, true);
    convolve(&Plan::new(&t), dy, &u, &Epilogue::default())
}
