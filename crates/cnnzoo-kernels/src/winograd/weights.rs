//! The kernels' transform `U = G g Gᵀ`, laid out for the register tile's products.

use std::mem::MaybeUninit;

use super::{R, T, XI};
use crate::buffer;

/// `U = G g Gᵀ` of every kernel `g = weight[o][i]`, or of the flipped kernel of
/// `weight[i][o]` when `transpose` (the input gradient's kernel), laid out for
/// [`crate::microkernel::product_tile`]: `[O / 4][36][I][4]`, output channels padded with zeros to
/// a multiple of 4.
pub(super) fn transform_weights(
    weight: &[f32],
    outs: usize,
    ins: usize,
    transpose: bool,
) -> Vec<f32> {
    let quad_len = XI * ins * R;
    buffer::par_written(outs.div_ceil(R) * quad_len, quad_len, |q, uq| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supports` (checked by every caller) requires AVX2 and FMA.
        unsafe {
            transform_quad(weight, outs, ins, transpose, q, uq);
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
pub(super) fn transform_quad(
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
pub(super) fn kernel_rows([k0, k1, k2]: [L8; 3]) -> [L8; T] {
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
pub(super) struct L8([f32; 8]);

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
