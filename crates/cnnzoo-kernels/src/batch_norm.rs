//! BatchNorm on `[N, C, ...]` `f32` slices: the training forward (batch statistics), its
//! backward, and the inference affine map, each in one or two passes over the tensor.
//!
//! Burn's generic BatchNorm composes it from tensor operations: a transposed copy of the input
//! for each statistic and about ten element-wise passes forward and backward. Here the
//! statistics are reduced in place per channel (accumulated in `f64`) and the output written
//! in one pass, planes spread over rayon's pool.

use rayon::prelude::*;

use crate::buffer;
use crate::simd::{lane_sums2, map1, map2};

/// Layout of a BatchNorm input: `batch` x `channels` planes of `plane` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Leading (batch) dimension.
    pub batch: usize,
    /// Channels (dimension 1).
    pub channels: usize,
    /// Elements per channel per image (product of the remaining dimensions).
    pub plane: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Elements reduced per channel.
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }

    /// The planes of channel `c`.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch).map(move |n| {
            let start = (n * self.channels + c) * self.plane;
            &x[start..start + self.plane]
        })
    }
}

/// Per channel `c`, the two sums of `f(param[c], a, b)` over the channel's elements of `a` and
/// `b` (one shape), in `f64`. Each plane is summed on its own (eight `f32` lanes), the planes
/// in memory order spread over the pool, so each worker streams through a contiguous run of
/// memory; then each channel adds its planes' sums in image order (a loop per channel jumped
/// from image to image, a short run of memory at a time). The order of the additions, and so
/// the result, does not depend on the pool.
fn channel_sums<P: Copy + Send + Sync>(
    s: NormShape,
    a: &[f32],
    b: &[f32],
    param: &[P],
    f: impl Fn(P, f32, f32) -> (f32, f32) + Sync + Send,
) -> Vec<(f64, f64)> {
    assert!(a.len() == s.len() && b.len() == s.len() && param.len() == s.channels);
    let planes: Vec<(f32, f32)> = (0..s.batch * s.channels)
        .into_par_iter()
        .with_min_len((PLANES_PER_JOB / s.plane.max(1)).max(1))
        .map(|i| {
            let (p, q) = (&a[i * s.plane..][..s.plane], &b[i * s.plane..][..s.plane]);
            let pc = param[i % s.channels];
            lane_sums2(p, q, |u, v| f(pc, u, v))
        })
        .collect();
    (0..s.channels)
        .map(|c| {
            let (mut s0, mut s1) = (0.0f64, 0.0f64);
            for n in 0..s.batch {
                let (u, v) = planes[n * s.channels + c];
                s0 += f64::from(u);
                s1 += f64::from(v);
            }
            (s0, s1)
        })
        .collect()
}

/// Elements a reduction job covers at least (whole planes).
const PLANES_PER_JOB: usize = 1 << 14;

/// BatchNorm as one affine map per channel: `(scale, shift)` with
/// `y = x * scale + shift`, `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
fn fold(gamma: f32, beta: f32, mean: f64, var: f64, epsilon: f64) -> (f32, f32) {
    let scale = f64::from(gamma) / (var + epsilon).sqrt();
    (scale as f32, (f64::from(beta) - mean * scale) as f32)
}

/// [`fold`] for every channel, from `f32` statistics.
fn fold_all(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Vec<(f32, f32)> {
    (0..gamma.len())
        .map(|c| {
            fold(
                gamma[c],
                beta[c],
                f64::from(mean[c]),
                f64::from(var[c]),
                eps,
            )
        })
        .collect()
}

/// Training forward, followed by ReLU when `relu`: returns the output, the batch mean and the
/// biased batch variance.
pub fn forward_train(
    s: NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "input length");
    // One pass per channel: sums of (v - k) and (v - k)^2 around a value k of the channel
    // itself, so that the difference of the two moments does not cancel the variance away
    // when the mean is large against the spread (the shifted-data algorithm); f32 sums per
    // plane (vectorised), f64 across planes.
    let shifts: Vec<f32> = (0..s.channels)
        .map(|c| {
            s.planes(x, c)
                .find_map(|p| p.first().copied())
                .unwrap_or(0.0)
        })
        .collect();
    let sums = channel_sums(s, x, x, &shifts, |k, v, _| (v - k, (v - k) * (v - k)));
    let stats: Vec<(f64, f64)> = sums
        .iter()
        .zip(&shifts)
        .map(|(&(sum, sq), &k)| {
            let n = s.count();
            let shifted_mean = sum / n;
            let var = (sq / n - shifted_mean * shifted_mean).max(0.0);
            (f64::from(k) + shifted_mean, var)
        })
        .collect();
    let scale_shift: Vec<(f32, f32)> = (0..s.channels)
        .map(|c| fold(gamma[c], beta[c], stats[c].0, stats[c].1, epsilon))
        .collect();
    let y = affine(s, x, &scale_shift, relu);
    let mean = stats.iter().map(|&(m, _)| m as f32).collect();
    let var = stats.iter().map(|&(_, v)| v as f32).collect();
    (y, mean, var)
}

/// `y = x * scale[c] + shift[c]` (then `max(y, 0)` when `relu`), plane by plane.
fn affine(s: NormShape, x: &[f32], scale_shift: &[(f32, f32)], relu: bool) -> Vec<f32> {
    if s.plane == 0 {
        return vec![0.0f32; s.len()];
    }
    buffer::par_written(s.len(), s.plane, |i, yp| {
        let xp = &x[i * s.plane..][..s.plane];
        let (scale, shift) = scale_shift[i % s.channels];
        if relu {
            map1(yp, xp, |v| (v * scale + shift).max(0.0));
        } else {
            map1(yp, xp, |v| v * scale + shift);
        }
    })
}

/// Inference: normalise with the given (running) statistics, then ReLU when `relu`.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    s: NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "input length");
    affine(s, x, &fold_all(gamma, beta, mean, var, epsilon), relu)
}

/// Backward of [`forward_train`]: returns the gradients of the input, `gamma` and `beta`.
/// With `relu`, the ReLU's mask is recomputed from `x` (no activation is kept for it).
#[allow(clippy::too_many_arguments)]
pub fn backward_train(
    s: NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "input length");
    assert_eq!(dy.len(), s.len(), "output-gradient length");
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (f64::from(v) + epsilon).sqrt())
        .collect();
    // The pre-activation is x * scale + shift; with `relu`, dy counts only where it is > 0.
    let scale_shift = fold_all(gamma, beta, mean, var, epsilon);
    let gate = |xv: f32, dv: f32, (scale, shift): (f32, f32)| {
        if !relu || xv * scale + shift > 0.0 {
            dv
        } else {
            0.0
        }
    };
    // Per channel: sum(dy) and sum(dy * xhat).
    let per_channel: Vec<(f32, (f32, f32))> = mean
        .iter()
        .copied()
        .zip(scale_shift.iter().copied())
        .collect();
    let sums: Vec<(f64, f64)> = channel_sums(s, x, dy, &per_channel, |(m, ss), xv, dv| {
        let d = gate(xv, dv, ss);
        (d, d * (xv - m))
    })
    .into_iter()
    .zip(&inv_std)
    .map(|((sd, sdx), inv)| (sd, sdx * inv))
    .collect();
    let dbeta: Vec<f32> = sums.iter().map(|&(sd, _)| sd as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|&(_, sdx)| sdx as f32).collect();
    // dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), as a*dy + b*x + c.
    let coef: Vec<(f32, f32, f32)> = (0..s.channels)
        .map(|c| {
            let k = f64::from(gamma[c]) * inv_std[c];
            let mean_dy = sums[c].0 / s.count();
            let mean_dyxhat = sums[c].1 / s.count();
            let bx = -k * mean_dyxhat * inv_std[c];
            (
                k as f32,
                bx as f32,
                (-k * mean_dy - bx * f64::from(mean[c])) as f32,
            )
        })
        .collect();
    let dx = if s.plane == 0 {
        vec![0.0f32; s.len()]
    } else {
        buffer::par_written(s.len(), s.plane, |i, dxp| {
            let (xp, dp) = (&x[i * s.plane..][..s.plane], &dy[i * s.plane..][..s.plane]);
            let ch = i % s.channels;
            let ((a, b, c), ss) = (coef[ch], scale_shift[ch]);
            if relu {
                map2(dxp, xp, dp, |xv, dv| a * gate(xv, dv, ss) + b * xv + c);
            } else {
                map2(dxp, xp, dp, |xv, dv| a * dv + b * xv + c);
            }
        })
    };
    (dx, dgamma, dbeta)
}
