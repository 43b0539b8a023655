//! The end of a residual block on `[N, C, H, W]` `f32` slices: `relu(branch + shortcut)`, and
//! with a standard SE unit `relu(branch * gate[n, c] + shortcut)` (the channel-wise axpy),
//! spread over rayon's pool: the forward in one pass; the backward in one pass without the
//! SE scale, in two with it (the masked gradient with each plane's gate sum, then the scaled
//! branch gradient; `crate::squeeze_excite` reuses both).
//!
//! Composed from tensor operations these are three to five element-wise passes each way
//! (multiply, add, ReLU; mask, multiply, channel sums), each allocating its output.

use rayon::prelude::*;

use crate::buffer;
use crate::simd::{lane_sums2, map1, map2};

/// Elements per rayon job for the unscaled kernels (large enough to amortise the scheduling).
const CHUNK: usize = 1 << 14;

/// `max(a + b, 0)`.
pub fn add_relu(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "operand lengths");
    buffer::par_written(a.len(), CHUNK, |i, y| {
        map2(y, &a[i * CHUNK..], &b[i * CHUNK..], |x, s| (x + s).max(0.0));
    })
}

/// The gradient that reaches both operands of [`add_relu`] (and the shortcut of
/// [`scale_add_relu`]): `dy` where the output `y` is positive, else 0.
pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "operand lengths");
    buffer::par_written(y.len(), CHUNK, |i, out| {
        map2(out, &y[i * CHUNK..], &dy[i * CHUNK..], |y, d| {
            if y > 0.0 { d } else { 0.0 }
        });
    })
}

/// `max(a * gates[n, c] + b, 0)` with `a`, `b` of `planes` planes of `plane` elements each and
/// one gate per plane.
pub fn scale_add_relu(a: &[f32], gates: &[f32], b: &[f32], plane: usize) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "operand lengths");
    assert_eq!(a.len(), gates.len() * plane, "one gate per plane");
    if plane == 0 {
        return Vec::new();
    }
    buffer::par_written(a.len(), plane, |i, y| {
        let g = gates[i];
        map2(y, &a[i * plane..], &b[i * plane..], |x, s| {
            (x * g + s).max(0.0)
        });
    })
}

/// Backward of [`scale_add_relu`] from its output `y`: returns the gradients of `a`, of the
/// gates (one per plane) and of `b`.
pub fn scale_add_relu_backward(
    a: &[f32],
    gates: &[f32],
    y: &[f32],
    dy: &[f32],
    plane: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(a.len(), gates.len() * plane, "one gate per plane");
    let (db, dgates) = masked_and_gate_grads(a, y, dy, gates.len(), plane);
    let da = scaled_planes(&db, gates, plane, |_| 0.0);
    (da, dgates, db)
}

/// The first pass of the backward of `relu(a * gates + b)` (with or without an SE unit making
/// the gates): `db`, the output gradient `dy` through the ReLU of the output `y`, and, while
/// each plane of it is in cache, that plane's gate gradient `sum(db * a)`.
pub(crate) fn masked_and_gate_grads(
    a: &[f32],
    y: &[f32],
    dy: &[f32],
    planes: usize,
    plane: usize,
) -> (Vec<f32>, Vec<f32>) {
    assert!(a.len() == y.len() && y.len() == dy.len(), "operand lengths");
    assert_eq!(a.len(), planes * plane, "planes of the operands");
    let mut db = buffer::uninit(a.len());
    let mut dgates = vec![0.0f32; planes];
    if plane > 0 {
        db.par_chunks_mut(plane)
            .zip(dgates.par_iter_mut())
            .enumerate()
            .for_each(|(i, (d, dg))| {
                let at = i * plane;
                map2(d, &y[at..], &dy[at..], |y, d| if y > 0.0 { d } else { 0.0 });
                // SAFETY: map2 wrote every element of `d`.
                let d = unsafe { &*(d as *const [_] as *const [f32]) };
                *dg = lane_sums2(d, &a[at..][..plane], |d, x| (d * x, 0.0)).0;
            });
    }
    // SAFETY: every plane was written by map2 (no planes: nothing to write).
    (unsafe { buffer::assume_init(db) }, dgates)
}

/// The branch's gradient from `db` (see [`masked_and_gate_grads`]): plane `i` scaled by
/// `gates[i]`, plus `shift(i)` on every element (an SE unit's squeeze adds its share there).
pub(crate) fn scaled_planes(
    db: &[f32],
    gates: &[f32],
    plane: usize,
    shift: impl Fn(usize) -> f32 + Sync + Send,
) -> Vec<f32> {
    buffer::par_written(db.len(), plane, |i, out| {
        let (g, s) = (gates[i], shift(i));
        map1(out, &db[i * plane..], |d| d * g + s);
    })
}
