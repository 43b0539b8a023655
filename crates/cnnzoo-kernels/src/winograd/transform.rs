//! The input and output transforms, `V = Bᵀ d B` of each input patch and `Aᵀ M A` of each
//! tile's products, eight tiles per AVX vector, with the convolution's epilogue applied as
//! output rows are written.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_blend_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_loadu_ps,
    _mm256_permute2f128_ps, _mm256_permutevar8x32_ps, _mm256_set1_ps, _mm256_setr_epi32,
    _mm256_setr_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_sub_ps,
    _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use super::plan::{Block, Plan, Scratch, runs};
use super::{AHEAD, LANES, M, ROW_STRIDE, T};
use crate::buffer::Shared;
use crate::geometry::Epilogue;
use crate::simd::{copy_row, prefetch};

/// Eight values from `s` (at least that long).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn load8(s: &[f32]) -> __m256 {
    let s = &s[..8];
    // SAFETY: `s` holds 8 values.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// `v` to the first eight values of `d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn store8(d: &mut [f32], v: __m256) {
    let d = &mut d[..8];
    // SAFETY: `d` holds 8 values.
    unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) }
}

/// `Bᵀ d` for eight columns `d` of patches at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn input_column([d0, d1, d2, d3, d4, d5]: [__m256; T]) -> [__m256; T] {
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
pub(super) fn output_column([d0, d1, d2, d3, d4, d5]: [__m256; T]) -> [__m256; M] {
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
pub(super) fn load6(src: &[f32], s0: usize, ss: usize) -> [__m256; T] {
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

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` of every patch `d` of the block, channel by channel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
pub(super) fn transform_input(p: &Plan, x: &[f32], b: &Block, s: &mut Scratch) {
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
pub(super) fn own_rows_input(p: &Plan, x: &[f32], b: &Block, s: &mut Scratch, c: usize) {
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
pub(super) fn rows_per_vector(p: &Plan, b: &Block) -> Option<usize> {
    let whole = b.tiles.start.is_multiple_of(p.tw) && b.tiles.len().is_multiple_of(p.tw);
    (matches!(p.tw, 2 | 4) && whole).then_some(LANES / p.tw)
}

/// [`transform_input`]'s row transform (`d B`) of channel `c` when `k` tile rows share each
/// vector ([`rows_per_vector`]): for each of the six patch rows, the `k` tile rows' padded
/// rows are read (in place for padding 1, else from a copy in `s.rows`) and the eight tiles'
/// columns split out of them at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn shared_rows_input(
    p: &Plan,
    x: &[f32],
    b: &Block,
    s: &mut Scratch,
    c: usize,
    k: usize,
) {
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
pub(super) fn shared_rows_output(
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
pub(super) fn deinterleave4(s: &[f32]) -> [__m256; 4] {
    assert!(s.len() >= 32);
    // SAFETY: s holds 32 values.
    let a: [__m256; 4] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(s.as_ptr().add(8 * k)) });
    deinterleave(a[0], a[1], a[2], a[3])
}

/// Eight runs of four values, two per vector (`a0` holds runs 0 and 1, `a3` runs 6 and 7), as
/// four vectors: vector `q` holds element `q` of each run.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn deinterleave(a0: __m256, a1: __m256, a2: __m256, a3: __m256) -> [__m256; 4] {
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
pub(super) fn interleave4(q: [__m256; 4], d: &mut [f32]) {
    assert!(d.len() >= 32);
    for (k, v) in interleaved(q).into_iter().enumerate() {
        // SAFETY: d holds 32 values.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr().add(8 * k), v) };
    }
}

/// [`interleave4`]'s runs as four vectors (runs 0 and 1 in the first, 6 and 7 in the last).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn interleaved(q: [__m256; 4]) -> [__m256; 4] {
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
pub(super) fn transpose4(b0: __m256, b1: __m256, b2: __m256, b3: __m256) -> [__m256; 4] {
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

/// `Aᵀ M A` of every tile and channel of the block, written to the output through the
/// epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
pub(super) fn transform_output(
    p: &Plan,
    b: &Block,
    s: &mut Scratch,
    epilogue: &Epilogue,
    out: Shared,
) {
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
