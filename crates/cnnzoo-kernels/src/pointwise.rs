//! 1x1 convolutions without padding or groups (the bottleneck's reduce and expand, its
//! strided projection shortcut, DenseNet's bottleneck) as one matrix product over the whole
//! batch.
//!
//! A 1x1 convolution is `y[n] (O x P) = W (O x C) · x[n] (C x P)` per image. The GEMM path
//! runs that product once per image, which on small maps (7x7, 14x14: 49 and 196 columns)
//! leaves its register tiles partly empty, repacks the weights for every image and applies the
//! epilogue in a second pass. Here the columns of every image are numbered as one sequence
//! (`q = n * P + p`) and cut into blocks that may span images; a worker copies a block's
//! columns (every `stride`-th row and column for a strided 1x1) into panels of 24 columns
//! that stay in its cache, and multiplies them by the weights, read in place, on a register
//! tile of 4 output channels x 24 columns. A tile that lies inside one image is written
//! straight into that image's planes with the epilogue (residual, bias, ReLU) applied in
//! registers; the few that straddle two images go through a small buffer.
//!
//! The input gradient of a stride-1 1x1 convolution is one too (the transposed weights, from
//! a packed copy), so it runs through the same code; the weight gradient stays on the GEMM
//! path.
//!
//! Any other convolution without groups is a 1x1 over its im2col matrix (`[C * kh * kw]`
//! rows per output position, the weights `[O, C, kh, kw]` already its rows): built for the
//! whole batch, it goes through the same code ([`forward_gathered_with`]), which is where the
//! forward pass of ResNet-50's strided 3x3s goes instead of one GEMM per image.

use rayon::prelude::*;

use crate::buffer::{self, Shared};
use crate::geometry::{ConvGeometry, Epilogue, check_forward};
use crate::im2col::im2col_into;
use crate::microkernel::{self, Fuse, simd_available};
use crate::simd::{copy_row, prefetch};

/// Output channels per product tile.
const R: usize = microkernel::ROWS;
/// Columns per product tile: a block's width is padded to a multiple of it.
const COLS: usize = microkernel::COLS;
/// Bytes of packed input one block keeps: read once per 4 output channels, so it should stay
/// in the core's L2 cache.
const BLOCK_BYTES: usize = 256 * 1024;
/// Bytes of packed input (a group of tiles) that every output channel passes over before the
/// next group: larger groups write each output row in longer pieces (one tile at a time, a
/// 64-channel expand wrote 96-byte pieces 256 rows apart and ran slower than the GEMM path),
/// and the group should still stay in the core's L2 cache.
const GROUP_BYTES: usize = 96 * 1024;

/// Whether [`forward_with`] can compute this convolution: a 1x1 kernel, no padding, dilation
/// or groups, non-empty, on a CPU with AVX2 and FMA. [`backward_data`] also needs stride 1
/// ([`supports_input_gradient`]).
pub fn supports(g: &ConvGeometry) -> bool {
    g.validate().is_ok()
        && g.kernel == [1, 1]
        && g.padding == [(0, 0); 2]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.output_len() > 0
        && g.input_len() > 0
        && simd_available()
}

/// Whether [`backward_data`] can compute this convolution's input gradient: [`supports`] and
/// stride 1.
pub fn supports_input_gradient(g: &ConvGeometry) -> bool {
    supports(g) && g.stride == [1, 1]
}

/// Whether [`crate::conv`] should take this path: it is supported and the maps are larger
/// than 1x1 (on 1x1 maps, SE's excitation FCs, the GEMM path makes one matrix product of the
/// batch already).
pub fn applies(g: &ConvGeometry) -> bool {
    let [oh, ow] = g.out_size().unwrap_or([0, 0]);
    supports(g) && oh * ow > 1
}

/// Whether [`crate::conv`] should take this path for the input gradient.
pub fn applies_to_input_gradient(g: &ConvGeometry) -> bool {
    applies(g) && g.stride == [1, 1]
}

/// The weights as the register tile reads them: element `(j, i)` (output row `j`, input
/// row `i`) of the product at `w[(j / 4) * quad + (j % 4) * row + i * col]`. The forward pass
/// reads `W` (`[O, C]`) in place; the input gradient reads `Wᵀ` packed by
/// [`pack_transposed`], since reading it in place strides a whole row of `W` per input row.
#[derive(Clone, Copy)]
struct Weights<'a> {
    w: &'a [f32],
    /// Distance between groups of 4 output rows, between output rows in a group and between
    /// input rows.
    quad: usize,
    row: usize,
    col: usize,
}

impl<'a> Weights<'a> {
    /// `W` (`[O, K]`, row-major) read in place: the forward weights of a 1x1 (`K = C`) and of
    /// a gathered convolution (`[O, C, kh, kw]`, `K = C * kh * kw`).
    fn in_place(w: &'a [f32], k: usize) -> Self {
        Weights {
            w,
            quad: R * k,
            row: k,
            col: 1,
        }
    }

    /// Element `(j, i)`.
    fn at(&self, j: usize, i: usize) -> f32 {
        self.w[(j / R) * self.quad + (j % R) * self.row + i * self.col]
    }
}

/// `Wᵀ` (`W` is `[o, c]`) as `[c / 4][o][4]`, its last group of rows padded with zeros.
fn pack_transposed(w: &[f32], o: usize, c: usize) -> Vec<f32> {
    // Four groups per piece: each row of W then gives one whole cache line of 16 columns.
    let group = o * R;
    buffer::par_written(c.div_ceil(R) * group, 4 * group, |piece, chunk| {
        for (gi, dst) in chunk.chunks_mut(group).enumerate() {
            let j0 = (piece * 4 + gi) * R;
            for (i, quad) in dst.chunks_exact_mut(R).enumerate() {
                for (r, v) in quad.iter_mut().enumerate() {
                    v.write(if j0 + r < c { w[i * c + j0 + r] } else { 0.0 });
                }
            }
        }
    })
}

/// One worker's buffers, kept from call to call.
struct Scratch {
    /// A block's columns as panels of [`COLS`], `[tiles][C][COLS]`.
    x: Vec<f32>,
    /// One product tile that does not land in one image's planes, `[4][COLS]`.
    y: Vec<f32>,
    /// The last 4 output rows' weights when O is not a multiple of 4, zero-padded, `[C][4]`.
    w: Vec<f32>,
}

thread_local! {
    /// Each worker's buffers: allocating them per call costs page faults on every call.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch { x: Vec::new(), y: Vec::new(), w: Vec::new() })
    };
}

/// The pieces of columns `cols` that lie in one image each: `(image, first position in the
/// image, length, offset from the start of `cols`)`.
fn runs(
    cols: std::ops::Range<usize>,
    plane: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let start = cols.start;
    let mut q = cols.start;
    std::iter::from_fn(move || {
        (q < cols.end).then(|| {
            let (img, p) = (q / plane, q % plane);
            let len = (plane - p).min(cols.end - q);
            let run = (img, p, len, q - start);
            q += len;
            run
        })
    })
}

/// Where the product's columns come from: `C` channels of `[in_h, in_w]` input planes, read
/// every `stride` rows and columns into `[out_h, out_w]` output planes.
#[derive(Debug, Clone, Copy)]
struct Source {
    c: usize,
    in_size: [usize; 2],
    out_size: [usize; 2],
    stride: [usize; 2],
}

impl Source {
    /// Output positions per image: the product's columns per image.
    fn plane(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }

    fn in_plane(&self) -> usize {
        self.in_size[0] * self.in_size[1]
    }

    /// Whether the columns are the input planes themselves (stride 1).
    fn contiguous(&self) -> bool {
        self.stride == [1, 1]
    }
}

/// Copies columns `cols` of the product's right-hand side, read from `x` (`[N, C, H, W]`)
/// as `src` says, into panels `[tiles][C][COLS]`.
fn pack_columns(x: &[f32], src: &Source, cols: std::ops::Range<usize>, xs: &mut [f32]) {
    let c = src.c;
    if !src.contiguous() {
        // A strided 1x1 (the downsampling shortcut) reads every other row and column.
        let (ow, iw) = (src.out_size[1], src.in_size[1]);
        for (img, p, len, at) in runs(cols, src.plane()) {
            for ci in 0..c {
                let plane = &x[(img * c + ci) * src.in_plane()..][..src.in_plane()];
                let (mut oy, mut ox) = (p / ow, p % ow);
                for j in at..at + len {
                    xs[((j / COLS) * c + ci) * COLS + j % COLS] =
                        plane[oy * src.stride[0] * iw + ox * src.stride[1]];
                    ox += 1;
                    if ox == ow {
                        (oy, ox) = (oy + 1, 0);
                    }
                }
            }
        }
        return;
    }
    let plane = src.plane();
    for (img, p, len, at) in runs(cols, plane) {
        for ci in 0..c {
            let src = &x[(img * c + ci) * plane + p..][..len];
            // The planes come from memory (the previous layer's output): asking for the
            // channel AHEAD planes on now keeps the copy from waiting on each of its lines
            // (measured faster in alternating runs; 8 channels ahead no better than 4).
            prefetch(
                x.as_ptr().wrapping_add((img * c + ci + AHEAD) * plane + p),
                len,
            );
            let mut j = 0;
            while j < len {
                let (t, col) = ((at + j) / COLS, (at + j) % COLS);
                let n = (COLS - col).min(len - j);
                let dst = &mut xs[(t * c + ci) * COLS + col..][..n];
                if let (Ok(d), Ok(s)) = (
                    <&mut [f32; COLS]>::try_from(&mut *dst),
                    <&[f32; COLS]>::try_from(&src[j..j + n]),
                ) {
                    // A fixed-size copy: inlined moves, not a call to `memcpy`.
                    *d = *s;
                } else {
                    copy_row(dst, &src[j..j + n]);
                }
                j += n;
            }
        }
    }
}

/// Channels ahead of the copy whose input [`pack_columns`] asks the cache for.
const AHEAD: usize = 4;

/// The 1x1 convolution of `x` (read as `src` says) with weights `wt` into `[N, O, P]`.
fn convolve(
    (batch, src, o): (usize, Source, usize),
    x: &[f32],
    wt: Weights,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let (c, plane) = (src.c, src.plane());
    let mut out = buffer::uninit(batch * o * plane);
    let ptr = Shared(out.as_mut_ptr());
    let cols = batch * plane;
    let threads = rayon::current_num_threads().max(1);
    // Blocks of whole tiles, as many as fit BLOCK_BYTES of panels, evened out.
    let tiles = cols.div_ceil(COLS);
    let blocks = tiles.div_ceil((BLOCK_BYTES / (4 * c * COLS)).max(1));
    let per_block = tiles.div_ceil(blocks) * COLS;
    let blocks = cols.div_ceil(per_block);
    // Few tiles (small maps at batch 1): every block is split into chunks of output channels
    // too, one per worker, so that no worker waits for another's extra tile.
    let chunks = if tiles < 8 * threads {
        threads.min(o.div_ceil(4 * R)).max(1)
    } else {
        1
    };
    let chunk = o.div_ceil(chunks).next_multiple_of(R);
    let chunks = o.div_ceil(chunk);
    (0..blocks * chunks).into_par_iter().for_each(|item| {
        SCRATCH.with_borrow_mut(|s| {
            let (b, ch) = (item / chunks, item % chunks);
            let range = b * per_block..((b + 1) * per_block).min(cols);
            let width = range.len().next_multiple_of(COLS);
            let chans = ch * chunk..((ch + 1) * chunk).min(o);
            if s.x.len() < c * width + 16 {
                s.x.resize(c * width + 16, 0.0);
            }
            s.y.resize(R * COLS, 0.0);
            // The last rows when O is not a multiple of 4, padded with zero rows.
            let spare = o.next_multiple_of(R) - R;
            if chans.contains(&spare) && spare + R > o {
                s.w.clear();
                for i in 0..c {
                    s.w.extend((spare..spare + R).map(|j| if j < o { wt.at(j, i) } else { 0.0 }));
                }
            }
            // The padding columns past the block keep finite leftovers; their products are
            // dropped.
            // Panels start on a cache line, so that no 32-byte load of a tile splits across
            // two (a few percent faster in alternating runs).
            let align = s.x.as_ptr().align_offset(64).min(16);
            let xs = &mut s.x[align..];
            pack_columns(x, &src, range.clone(), xs);
            // Tiles in groups whose panels stay in cache while every output channel passes
            // over them, so that each channel's outputs are written a group's width at a time.
            let group = (GROUP_BYTES / (4 * COLS * c)).max(1) * COLS;
            for g0 in (0..width).step_by(group) {
                for ob in chans.clone().step_by(R) {
                    let w = if ob + R <= o {
                        Weights {
                            w: &wt.w[ob / R * wt.quad..],
                            ..wt
                        }
                    } else {
                        Weights {
                            w: &s.w,
                            quad: 0,
                            row: 1,
                            col: R,
                        }
                    };
                    for t in (g0..(g0 + group).min(width)).step_by(COLS) {
                        let panel = &xs[t * c..][..c * COLS];
                        let q = range.start + t;
                        let (img, p) = (q / plane, q % plane);
                        // A whole tile inside one image's planes is written there directly,
                        // with the epilogue applied in registers.
                        if p + COLS <= plane && q + COLS <= range.end && ob + R <= o {
                            let pos = (img * o + ob) * plane + p;
                            let fuse = Fuse {
                                bias: epilogue.bias.map_or(std::ptr::null(), |b| b[ob..].as_ptr()),
                                residual: epilogue
                                    .residual
                                    .map_or(std::ptr::null(), |r| r[pos..].as_ptr()),
                                relu: epilogue.relu,
                            };
                            // SAFETY: rows ob..ob + 4 of image `img`, columns p..p + COLS, lie
                            // in the output (and the residual, of the output's shape); only
                            // this block and chunk write them; `supports` checked AVX2 + FMA.
                            unsafe {
                                tile(panel, w, c, ptr.0.add(pos).cast::<f32>(), plane, fuse);
                            }
                            continue;
                        }
                        // SAFETY: `s.y` holds 4 rows of COLS.
                        unsafe { tile(panel, w, c, s.y.as_mut_ptr(), COLS, Fuse::NONE) };
                        let cols_here = q..(q + COLS).min(range.end);
                        for r in 0..R.min(o - ob) {
                            for (img, p, len, at) in runs(cols_here.clone(), plane) {
                                let pos = (img * o + ob + r) * plane + p;
                                // SAFETY: these positions of channel `ob + r` of image `img` are
                                // inside the output, and only this block and chunk write them.
                                let dst = unsafe { ptr.slice(pos, len) };
                                epilogue.write(dst, &s.y[r * COLS + at..][..len], ob + r, pos);
                            }
                        }
                    }
                }
            }
        });
    });
    // SAFETY: the blocks cover every column of every image and the chunks every output
    // channel; each writes all of its positions.
    unsafe { buffer::assume_init(out) }
}

/// `y[j * stride + q] = e(sum_i w(j, i) * x[i * COLS + q])` for the 4 rows `j` and the
/// [`COLS`] columns `q` over `rows` input rows `i`, `e` adding the residual
/// (`fuse.residual[j * stride + q]`), then the bias (`fuse.bias[j]`), then taking the ReLU,
/// each where `fuse` asks for it.
///
/// # Safety
/// AVX2 and FMA must be available, and `y` (and the residual, when given) valid for the 4
/// rows of `COLS` at `stride` apart. The operands' lengths are checked here.
unsafe fn tile(x: &[f32], w: Weights, rows: usize, y: *mut f32, stride: usize, fuse: Fuse) {
    assert!(rows > 0 && x.len() >= rows * COLS && stride >= COLS);
    assert!(w.w.len() > (R - 1) * w.row + (rows - 1) * w.col);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as the caller guarantees; the operands' reads are bounded by the asserts.
    unsafe {
        microkernel::fused_tile(
            x.as_ptr(),
            w.w.as_ptr(),
            w.row,
            w.col,
            rows,
            y,
            stride,
            fuse,
        );
    };
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (y, fuse);
        unreachable!("the pointwise kernel needs AVX2 and FMA");
    }
}

/// Forward 1x1 convolution with `epilogue` applied as each output is written; same contract
/// as [`crate::conv::conv2d_forward_with`]. Panics unless [`supports`] holds.
pub fn forward_with(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
    assert!(supports(g), "the pointwise kernel does not support {g:?}");
    check_forward(g, x, weight, &epilogue);
    let (c, o) = (g.in_channels, g.out_channels);
    let wt = Weights::in_place(weight, c);
    let src = Source {
        c,
        in_size: g.in_size,
        out_size: g.out_size().expect("validated geometry"),
        stride: g.stride,
    };
    convolve((g.batch, src, o), x, wt, &epilogue)
}

/// Forward convolution of any kernel without groups as a 1x1 convolution over its im2col
/// matrix (`[N, C * kh * kw, OH * OW]`, built for the whole batch), with `epilogue` applied as
/// each output is written; same contract as [`crate::conv::conv2d_forward_with`]. Panics
/// unless [`supports_gathered`] holds.
pub fn forward_gathered_with(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    epilogue: Epilogue,
) -> Vec<f32> {
    assert!(
        supports_gathered(g),
        "the pointwise kernel does not support {g:?} through im2col"
    );
    check_forward(g, x, weight, &epilogue);
    let (k, o) = (g.k(), g.out_channels);
    let out_size = g.out_size().expect("validated geometry");
    let p = out_size[0] * out_size[1];
    let in_img = g.in_channels * g.in_size[0] * g.in_size[1];
    let cols = buffer::par_written(g.batch * k * p, k * p, |n, cols| {
        im2col_into(g, &x[n * in_img..][..in_img], 0, cols);
    });
    let wt = Weights::in_place(weight, k);
    let src = Source {
        c: k,
        in_size: out_size,
        out_size,
        stride: [1, 1],
    };
    convolve((g.batch, src, o), &cols, wt, &epilogue)
}

/// Whether [`crate::conv`] should take [`forward_gathered_with`] for a convolution the other
/// kernels leave to im2col + GEMM: it is supported, the batch has at least 8 tiles of columns
/// (ResNet-50's 512-channel strided 3x3 at batch 1, 2 tiles, is slower here than on the GEMM
/// path, its 256-channel one, 8 tiles, faster) and the batch's im2col matrix takes at most
/// [`MAX_GATHERED_BYTES`]. Measured in alternating pairs against im2col + GEMM on ResNet-50's
/// strided 3x3s at batches 1 and 8 and its 512-channel 7x7 3x3 at batch 8
/// (`examples/gathered_bound.rs`, results/gathered_bound.md): its products run on the register
/// tile over panels of the whole batch's columns and write their epilogue in place, where the
/// GEMM path multiplies one image at a time. The stem's 7x7 over 3 channels is far slower here
/// (its im2col matrix costs more than its few products per column), but the direct kernel
/// takes it first.
pub fn applies_gathered(g: &ConvGeometry) -> bool {
    let [oh, ow] = g.out_size().unwrap_or([0, 0]);
    let cols = g.batch * oh * ow;
    supports_gathered(g) && cols >= 8 * COLS && cols * g.k() * 4 <= MAX_GATHERED_BYTES
}

/// Largest im2col matrix [`applies_gathered`] builds (ResNet-50's first strided 3x3 at batch 8
/// needs 28 MiB).
pub const MAX_GATHERED_BYTES: usize = 64 << 20;

/// Whether [`forward_gathered_with`] can compute this convolution: no groups, non-empty, on a
/// CPU with AVX2 and FMA.
pub fn supports_gathered(g: &ConvGeometry) -> bool {
    g.validate().is_ok()
        && g.groups == 1
        && g.output_len() > 0
        && g.input_len() > 0
        && simd_available()
}

/// Gradient with respect to the input of a 1x1 convolution (the output gradient times the
/// transposed weights); same contract as [`crate::conv::conv2d_backward_data`]. Panics
/// unless [`supports_input_gradient`] holds.
pub fn backward_data(g: &ConvGeometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(
        supports_input_gradient(g),
        "the pointwise kernel does not support the input gradient of {g:?}"
    );
    assert_eq!(dy.len(), g.output_len(), "output-gradient length");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    let (c, o) = (g.in_channels, g.out_channels);
    // dx = Wᵀ dy: output row j (an input channel) and input row i (an output channel) of the
    // product is W[i, j].
    let packed = pack_transposed(weight, o, c);
    let wt = Weights {
        w: &packed,
        quad: R * o,
        row: 1,
        col: R,
    };
    let src = Source {
        c: o,
        in_size: g.in_size,
        out_size: g.in_size,
        stride: [1, 1],
    };
    convolve((g.batch, src, c), dy, wt, &Epilogue::default())
}
