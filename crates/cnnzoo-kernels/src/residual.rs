//! The end of a residual block on `[N, C, H, W]` `f32` slices: `relu(branch + shortcut)`, and
//! with a standard SE unit `relu(branch * gate[n, c] + shortcut)` (the channel-wise axpy),
//! forward and backward, each in one pass spread over rayon's pool.
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
    assert!(a.len() == y.len() && y.len() == dy.len(), "operand lengths");
    assert_eq!(a.len(), gates.len() * plane, "one gate per plane");
    let db = relu_backward(y, dy);
    if plane == 0 {
        return (Vec::new(), vec![0.0; gates.len()], db);
    }
    let mut dgates = vec![0.0f32; gates.len()];
    let da = buffer::par_written(a.len(), plane, |i, da| {
        let g = gates[i];
        map1(da, &db[i * plane..], |d| d * g);
    });
    dgates.par_iter_mut().enumerate().for_each(|(i, dg)| {
        let (p, q) = (&db[i * plane..][..plane], &a[i * plane..][..plane]);
        *dg = lane_sums2(p, q, |d, x| (d * x, 0.0)).0;
    });
    (da, dgates, db)
}
