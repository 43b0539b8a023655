//! Convolution as one GEMM per image (and group) over an im2col buffer: the path that takes
//! every geometry (forward, backward-data and backward-weight) when no specialised kernel
//! applies, and the reference the others are tested against.
//!
//! Everything stays in NCHW, the layout the networks use end to end, so no layout copies are
//! made around the GEMMs. Images are spread over rayon's pool and each worker reuses one
//! im2col buffer; a 1x1 stride-1 unpadded convolution (the bottleneck's reduce and expand)
//! reads its input as the GEMM operand directly, with no im2col at all.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer;
use crate::geometry::{ConvGeometry, Epilogue, check_forward};

/// Fills `cols` (`[K, P]` row-major) with image `x` (`[C, H, W]`) for channels `c0..c0+cin_g`.
fn im2col(g: &ConvGeometry, x: &[f32], c0: usize, cols: &mut [f32]) {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and `im2col_into` writes only
    // initialised values, so `cols` stays initialised.
    let cols = unsafe { &mut *(cols as *mut [f32] as *mut [MaybeUninit<f32>]) };
    im2col_into(g, x, c0, cols);
}

/// [`im2col`] into a buffer that need not be initialised: every element of `cols[..K * P]` is
/// written.
pub(crate) fn im2col_into(g: &ConvGeometry, x: &[f32], c0: usize, cols: &mut [MaybeUninit<f32>]) {
    let [h, w] = g.in_size;
    let [oh, ow] = g.out_hw();
    let [kh, kw] = g.kernel;
    let p = oh * ow;
    let zero = |o: &mut [MaybeUninit<f32>]| o.iter_mut().for_each(|v| _ = v.write(0.0));
    for ci in 0..g.cin_g() {
        let plane = &x[(c0 + ci) * h * w..(c0 + ci + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &mut cols[((ci * kh + ki) * kw + kj) * p..][..p];
                let dy = (ki * g.dilation[0]) as isize - g.padding[0].0 as isize;
                let dx = (kj * g.dilation[1]) as isize - g.padding[1].0 as isize;
                for oy in 0..oh {
                    let iy = (oy * g.stride[0]) as isize + dy;
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        zero(out);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    if g.stride[1] == 1 {
                        // Contiguous run: zero the padded ends, copy the middle.
                        let lo = (-dx).clamp(0, ow as isize) as usize;
                        let hi = (w as isize - dx).clamp(lo as isize, ow as isize) as usize;
                        zero(&mut out[..lo]);
                        out[lo..hi].write_copy_of_slice(
                            &src[(lo as isize + dx) as usize..(hi as isize + dx) as usize],
                        );
                        zero(&mut out[hi..]);
                    } else {
                        let (lo, hi, first) = strided_span(g.stride[1], dx, w, ow);
                        zero(&mut out[..lo]);
                        let from = src[first.min(w)..].iter().step_by(g.stride[1]);
                        for (o, v) in out[lo..hi].iter_mut().zip(from) {
                            o.write(*v);
                        }
                        zero(&mut out[hi..]);
                    }
                }
            }
        }
    }
}

/// The output columns `lo..hi` of a row whose input column `ox * stride + offset` lies in
/// `0..w`, and the input column of `lo` (`first`), for a row of `ow` outputs: the strided
/// loops of [`im2col_into`] and [`col2im`] run over that span without a bounds test per column.
fn strided_span(stride: usize, offset: isize, w: usize, ow: usize) -> (usize, usize, usize) {
    let s = stride as isize;
    let lo = (((-offset).max(0) + s - 1) / s).min(ow as isize);
    let hi = ((w as isize - offset + s - 1) / s).clamp(lo, ow as isize);
    (lo as usize, hi as usize, (lo * s + offset).max(0) as usize)
}

/// Adds `cols` (`[K, P]`) back into image gradient `dx` (`[C, H, W]`), the adjoint of [`im2col`].
fn col2im(g: &ConvGeometry, cols: &[f32], c0: usize, dx: &mut [f32]) {
    let [h, w] = g.in_size;
    let [oh, ow] = g.out_hw();
    let [kh, kw] = g.kernel;
    let p = oh * ow;
    for ci in 0..g.cin_g() {
        let plane = &mut dx[(c0 + ci) * h * w..(c0 + ci + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &cols[((ci * kh + ki) * kw + kj) * p..][..p];
                let dy = (ki * g.dilation[0]) as isize - g.padding[0].0 as isize;
                let dxo = (kj * g.dilation[1]) as isize - g.padding[1].0 as isize;
                for oy in 0..oh {
                    let iy = (oy * g.stride[0]) as isize + dy;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let src = &row[oy * ow..(oy + 1) * ow];
                    if g.stride[1] == 1 {
                        let lo = (-dxo).clamp(0, ow as isize) as usize;
                        let hi = (w as isize - dxo).clamp(lo as isize, ow as isize) as usize;
                        let d =
                            &mut dst[(lo as isize + dxo) as usize..(hi as isize + dxo) as usize];
                        for (a, b) in d.iter_mut().zip(&src[lo..hi]) {
                            *a += *b;
                        }
                    } else {
                        let (lo, hi, first) = strided_span(g.stride[1], dxo, w, ow);
                        let d = dst[first.min(w)..].iter_mut().step_by(g.stride[1]);
                        for (a, b) in d.zip(&src[lo..hi]) {
                            *a += *b;
                        }
                    }
                }
            }
        }
    }
}

/// Images per rayon job: an even share per worker, so each worker makes its im2col buffer
/// once per call instead of once per adaptive split.
fn images_per_worker(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// The im2col buffer of one worker (empty for a pointwise convolution, which needs none).
fn cols_buffer(g: &ConvGeometry) -> Vec<f32> {
    if g.is_pointwise() {
        Vec::new()
    } else {
        vec![0.0; g.k() * g.p()]
    }
}

/// Group `gi` of image `xi` as the `[K, P]` GEMM operand: the input itself for a pointwise
/// convolution, else its im2col in `cols`.
fn columns<'a>(g: &ConvGeometry, xi: &'a [f32], gi: usize, cols: &'a mut [f32]) -> &'a [f32] {
    let cin_g = g.cin_g();
    if g.is_pointwise() {
        let p = g.p();
        &xi[gi * cin_g * p..(gi + 1) * cin_g * p]
    } else {
        im2col(g, xi, gi * cin_g, cols);
        cols
    }
}

/// GEMMs threaded across every worker (one matrix product for the whole batch).
fn all_workers() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads())
}

/// A 1x1 convolution of 1x1 maps without groups (SE's excitation FCs, a NiN head on a pooled
/// map) is a plain matrix product over the batch: `[N, C]` rows, one GEMM for all images.
fn is_matrix_product(g: &ConvGeometry) -> bool {
    g.is_pointwise() && g.p() == 1 && g.groups == 1
}

/// How each GEMM is threaded: serially when there are at least as many images as workers
/// (the callers spread images over the workers), across the workers when there are fewer
/// (batch-1 inference would otherwise use one core).
fn gemm_parallelism(batch: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if batch >= threads {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    }
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, all row-major with the given row strides, or with
/// `lhs` / `rhs` read transposed, threaded as `par` says.
#[allow(clippy::too_many_arguments)]
fn gemm_rm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_t: bool,
    rhs: &[f32],
    rhs_t: bool,
    par: gemm::Parallelism,
) {
    debug_assert!(dst.len() >= m * n);
    // Row-major [r, c] with row stride s: column stride 1, row stride s. A transposed operand
    // stored as [c, r] swaps the two.
    let (lhs_cs, lhs_rs) = if lhs_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (rhs_cs, rhs_rs) = if rhs_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    debug_assert!(lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: the slices hold at least m*n, m*k and k*n elements (asserted above in debug
    // builds, guaranteed by the callers' geometry), and the strides stay inside them.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            accumulate,
            (lhs, lhs_cs, lhs_rs),
            (rhs, rhs_cs, rhs_rs),
            par,
        );
    }
}

/// `dst[m, n] = lhs[m, k] * rhs[k, n]` into an uninitialised `dst` (the GEMM writes every
/// element and reads none: no zeroing pass first), operands row-major and untransposed.
#[allow(clippy::too_many_arguments)]
fn gemm_rm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [MaybeUninit<f32>],
    lhs: &[f32],
    rhs: &[f32],
    par: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: bounds asserted above; with `accumulate` false the GEMM never reads `dst`, and
    // it writes all m * n elements.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            false,
            (lhs, 1, k as isize),
            (rhs, 1, n as isize),
            par,
        );
    }
}

/// The `gemm` crate's call on a row-major `dst` with `n` columns; each operand with its
/// column and row strides.
///
/// # Safety
/// `dst` must be valid for `m * n` writes (and reads when `accumulate`), and the strides must
/// keep every operand access inside its slice.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (&[f32], isize, isize),
    (rhs, rhs_cs, rhs_rs): (&[f32], isize, isize),
    par: gemm::Parallelism,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Forward convolution without bias through im2col + GEMM, whatever the other paths'
/// `applies` say.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_with(g, x, weight, Epilogue::default())
}

/// [`forward`] with `epilogue` applied to each image's output right after its GEMMs,
/// while the worker that wrote it still has it in cache.
pub fn forward_with(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
    check_forward(g, x, weight, &epilogue);
    let (k, p, cout_g) = (g.k(), g.p(), g.cout_g());
    let in_img = g.in_channels * g.in_size[0] * g.in_size[1];
    let out_img = g.out_channels * p;
    if g.output_len() == 0 {
        return Vec::new();
    }
    if is_matrix_product(g) {
        // out [N, O] = x [N, C] * weight [O, C]^T.
        let (n, o, c) = (g.batch, g.out_channels, g.in_channels);
        let mut out = vec![0.0f32; g.output_len()];
        gemm_rm(
            n,
            o,
            c,
            &mut out,
            false,
            x,
            false,
            weight,
            true,
            all_workers(),
        );
        // [N, O]: each image's row holds its O channels' 1x1 planes.
        for (i, row) in out.chunks_exact_mut(o).enumerate() {
            epilogue.apply(row, 1, 0, i * o);
        }
        return out;
    }
    let par = gemm_parallelism(g.batch);
    // Fewer images than workers: each GEMM is threaded, so the epilogue gets its own
    // parallel pass afterwards instead of running on one worker per image.
    let per_image = g.batch >= rayon::current_num_threads();
    let mut out = buffer::uninit(g.output_len());
    out.par_chunks_mut(out_img)
        .zip(x.par_chunks(in_img))
        .enumerate()
        .with_min_len(images_per_worker(g.batch))
        .for_each_init(
            || cols_buffer(g),
            |cols, (n, (y, xi))| {
                for gi in 0..g.groups {
                    let rhs = columns(g, xi, gi, cols);
                    let yg = &mut y[gi * cout_g * p..(gi + 1) * cout_g * p];
                    let wg = &weight[gi * cout_g * k..(gi + 1) * cout_g * k];
                    gemm_rm_into(cout_g, p, k, yg, wg, rhs, par);
                }
                if per_image {
                    // SAFETY: the GEMMs above wrote every group's channels of this image.
                    let y = unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) };
                    epilogue.apply(y, p, 0, n * out_img);
                }
            },
        );
    // SAFETY: every image's groups were written by `gemm_rm_into`, which writes all of its
    // cout_g * p outputs.
    let mut out = unsafe { buffer::assume_init(out) };
    if !per_image && !epilogue.is_identity() {
        out.par_chunks_mut(p)
            .enumerate()
            .for_each(|(i, plane)| epilogue.apply(plane, p, i % g.out_channels, i * p));
    }
    out
}

/// Gradient with respect to the input through im2col + GEMM, whatever the other paths'
/// `applies` say.
pub fn backward_data(g: &ConvGeometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), g.output_len(), "output-gradient length");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    let (k, p, cin_g, cout_g) = (g.k(), g.p(), g.cin_g(), g.cout_g());
    let in_img = g.in_channels * g.in_size[0] * g.in_size[1];
    let out_img = g.out_channels * p;
    if g.input_len() == 0 || dy.is_empty() {
        return vec![0.0f32; g.input_len()];
    }
    if is_matrix_product(g) {
        // dx [N, C] = dy [N, O] * weight [O, C].
        let (n, o, c) = (g.batch, g.out_channels, g.in_channels);
        let mut dx = vec![0.0f32; g.input_len()];
        gemm_rm(
            n,
            c,
            o,
            &mut dx,
            false,
            dy,
            false,
            weight,
            false,
            all_workers(),
        );
        return dx;
    }
    let pointwise = g.is_pointwise();
    let par = gemm_parallelism(g.batch);
    let mut dx = buffer::uninit(g.input_len());
    dx.par_chunks_mut(in_img)
        .zip(dy.par_chunks(out_img))
        .with_min_len(images_per_worker(g.batch))
        .for_each_init(
            || cols_buffer(g),
            |cols, (dxi, dyi)| {
                // Zeroed: col2im adds into it.
                let dxi = buffer::zeroed(dxi);
                for gi in 0..g.groups {
                    let wg = &weight[gi * cout_g * k..(gi + 1) * cout_g * k];
                    let dyg = &dyi[gi * cout_g * p..(gi + 1) * cout_g * p];
                    if pointwise {
                        let dst = &mut dxi[gi * cin_g * p..(gi + 1) * cin_g * p];
                        gemm_rm(k, p, cout_g, dst, false, wg, true, dyg, false, par);
                    } else {
                        gemm_rm(k, p, cout_g, cols, false, wg, true, dyg, false, par);
                        col2im(g, cols, gi * cin_g, dxi);
                    }
                }
            },
        );
    // SAFETY: every image's chunk went through `buffer::zeroed`.
    unsafe { buffer::assume_init(dx) }
}

/// Gradient with respect to the weight through im2col + GEMM, whatever
/// [`crate::direct::applies_to_weight_gradient`] says.
pub fn backward_weight(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.input_len(), "input length");
    assert_eq!(dy.len(), g.output_len(), "output-gradient length");
    let (k, p, cout_g) = (g.k(), g.p(), g.cout_g());
    let in_img = g.in_channels * g.in_size[0] * g.in_size[1];
    let out_img = g.out_channels * p;
    let wlen = g.weight_len();
    if g.batch == 0 || p == 0 {
        return vec![0.0; wlen];
    }
    if is_matrix_product(g) {
        // dw [O, C] = dy [N, O]^T * x [N, C].
        let (n, o, c) = (g.batch, g.out_channels, g.in_channels);
        let mut dw = vec![0.0f32; wlen];
        gemm_rm(o, c, n, &mut dw, false, dy, true, x, false, all_workers());
        return dw;
    }
    let par = gemm_parallelism(g.batch);
    buffer::sum_over_image_runs(g.batch, |images| {
        let mut acc = vec![0.0f32; wlen];
        let mut cols = cols_buffer(g);
        let mut first = true;
        for n in images {
            let xi = &x[n * in_img..(n + 1) * in_img];
            let dyi = &dy[n * out_img..(n + 1) * out_img];
            for gi in 0..g.groups {
                let rhs = columns(g, xi, gi, &mut cols);
                let dyg = &dyi[gi * cout_g * p..(gi + 1) * cout_g * p];
                let dst = &mut acc[gi * cout_g * k..(gi + 1) * cout_g * k];
                gemm_rm(cout_g, k, p, dst, !first, dyg, false, rhs, true, par);
            }
            first = false;
        }
        acc
    })
}
