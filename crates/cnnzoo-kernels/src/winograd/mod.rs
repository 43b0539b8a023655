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
//! (`transform::rows_per_vector`) instead of each filling a quarter or a half of one. `V` is
//! laid out `[ξ][C][tiles]`, so the products run on the register tile the direct kernels share (4
//! output channels x 24 tiles, `microkernel::product_tile`) with no packing. A block of tiles
//! (a few hundred KiB of `V`) is transformed, multiplied and written out by one worker before
//! the next, so its transformed patches stay in cache.
//!
//! [`plan`] cuts the work into blocks, [`weights`] transforms the kernels, [`transform`] the
//! input patches and the products' tiles; this module holds the products and the dispatch.
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

mod plan;
mod transform;
mod weights;

use rayon::prelude::*;

use crate::buffer::{self, Shared};
use crate::geometry::{ConvGeometry, Epilogue, check_input};
use crate::microkernel::{self, product_tile, simd_available};
use plan::{Block, Plan, SCRATCH, Scratch};
use transform::{transform_input, transform_output};
use weights::transform_weights;

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
const R: usize = microkernel::ROWS;
/// Tiles per product tile: a block's tile count is padded to a multiple of it.
const COLS: usize = microkernel::COLS;
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
        && simd_available()
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
    assert!(simd_available());
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
                product_tile(&v[t..], np, cin, uq, m, np);
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
        });
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
    check_input(g, x, &epilogue);
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
