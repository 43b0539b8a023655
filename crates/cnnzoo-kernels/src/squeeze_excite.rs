//! A standard Squeeze-and-Excitation unit fused with the end of its residual block, on
//! `[N, C, H, W]` `f32` slices: squeeze (channel means), excitation (FC `C -> R`, ReLU,
//! FC `R -> C`, sigmoid), then `relu(branch * gate + shortcut)`.
//!
//! Composed from tensor operations, the squeeze is two reductions forward and two broadcasts
//! backward, and the branch's gradient arrives in two halves (through the scale and through
//! the squeeze) that are added as whole tensors. Here the forward reads the branch twice
//! (means, then the axpy) and the backward makes two passes: the masked gradient with each
//! plane's gate gradient, then the branch gradient with the squeeze's share added in.
//! The FCs act on `N x C` values and run serially.

use rayon::prelude::*;

use crate::residual;
use crate::simd::lane_sum;

/// Sizes of one fused SE block end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeShape {
    /// Images.
    pub batch: usize,
    /// Channels of the branch (C).
    pub channels: usize,
    /// Width of the excitation bottleneck (R).
    pub reduced: usize,
    /// Elements per channel plane (H * W).
    pub plane: usize,
}

impl SeShape {
    fn planes(&self) -> usize {
        self.batch * self.channels
    }

    fn len(&self) -> usize {
        self.planes() * self.plane
    }
}

/// What the forward pass computes besides the output, kept for the backward pass: the channel
/// means `[N, C]`, the bottleneck after its ReLU `[N, R]` and the gates `[N, C]`.
#[derive(Debug, Clone)]
pub struct Excitation {
    /// Channel means of the branch.
    pub squeezed: Vec<f32>,
    /// `relu(fc1(squeezed))`.
    pub hidden: Vec<f32>,
    /// `sigmoid(fc2(hidden))`.
    pub gates: Vec<f32>,
}

/// Squeeze and excitation of `a` (`[N, C, plane]`) with `w1` `[R, C]`, `b1` `[R]`, `w2`
/// `[C, R]`, `b2` `[C]`.
pub fn excite(a: &[f32], w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32], s: SeShape) -> Excitation {
    let (c, r) = (s.channels, s.reduced);
    assert_eq!(a.len(), s.len(), "branch length");
    assert!(w1.len() == r * c && b1.len() == r, "fc1 shape");
    assert!(w2.len() == c * r && b2.len() == c, "fc2 shape");
    let mut squeezed = vec![0.0f32; s.planes()];
    if s.plane > 0 {
        let inv = 1.0 / s.plane as f32;
        squeezed
            .par_iter_mut()
            .zip(a.par_chunks_exact(s.plane))
            .for_each(|(m, p)| *m = lane_sum(p, |v| v) * inv);
    }
    let mut hidden = vec![0.0f32; s.batch * r];
    let mut gates = vec![0.0f32; s.planes()];
    for n in 0..s.batch {
        let sq = &squeezed[n * c..][..c];
        let h = &mut hidden[n * r..][..r];
        for (j, hj) in h.iter_mut().enumerate() {
            let z = b1[j] + dot(&w1[j * c..][..c], sq);
            *hj = z.max(0.0);
        }
        for (k, gk) in gates[n * c..][..c].iter_mut().enumerate() {
            let z = b2[k] + dot(&w2[k * r..][..r], h);
            *gk = 1.0 / (1.0 + (-z).exp());
        }
    }
    Excitation {
        squeezed,
        hidden,
        gates,
    }
}

/// Gradients of the fused SE block end.
#[derive(Debug, Clone)]
pub struct SeGrads {
    /// Of the branch `a`.
    pub a: Vec<f32>,
    /// Of fc1's weight `[R, C]`.
    pub w1: Vec<f32>,
    /// Of fc1's bias `[R]`.
    pub b1: Vec<f32>,
    /// Of fc2's weight `[C, R]`.
    pub w2: Vec<f32>,
    /// Of fc2's bias `[C]`.
    pub b2: Vec<f32>,
    /// Of the shortcut.
    pub shortcut: Vec<f32>,
}

/// Backward of `y = relu(a * gates + shortcut)` with the gates from [`excite`], from the output
/// `y` and its gradient `dy`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    a: &[f32],
    w1: &[f32],
    w2: &[f32],
    e: &Excitation,
    y: &[f32],
    dy: &[f32],
    s: SeShape,
) -> SeGrads {
    let (c, r, plane) = (s.channels, s.reduced, s.plane);
    assert!(
        a.len() == s.len() && y.len() == s.len() && dy.len() == s.len(),
        "lengths"
    );
    assert!(w1.len() == r * c && w2.len() == c * r, "fc shapes");
    assert!(
        e.gates.len() == s.planes() && e.hidden.len() == s.batch * r,
        "excitation"
    );
    // Pass 1: the shortcut's gradient (dy through the ReLU) and each plane's gate gradient.
    let (shortcut, dgates) = residual::masked_and_gate_grads(a, y, dy, s.planes(), plane);
    // The excitation's gradients, on N x C values.
    let (mut dw1, mut db1) = (vec![0.0f32; r * c], vec![0.0f32; r]);
    let (mut dw2, mut db2) = (vec![0.0f32; c * r], vec![0.0f32; c]);
    let mut dsq = vec![0.0f32; s.planes()];
    let mut dz2 = vec![0.0f32; c];
    let mut dh = vec![0.0f32; r];
    for n in 0..s.batch {
        let (g, h, sq) = (
            &e.gates[n * c..][..c],
            &e.hidden[n * r..][..r],
            &e.squeezed[n * c..][..c],
        );
        for k in 0..c {
            let gk = g[k];
            dz2[k] = dgates[n * c + k] * gk * (1.0 - gk);
            db2[k] += dz2[k];
            for j in 0..r {
                dw2[k * r + j] += dz2[k] * h[j];
            }
        }
        for j in 0..r {
            let back: f32 = (0..c).map(|k| w2[k * r + j] * dz2[k]).sum();
            dh[j] = if h[j] > 0.0 { back } else { 0.0 };
            db1[j] += dh[j];
            for (dw, x) in dw1[j * c..][..c].iter_mut().zip(sq) {
                *dw += dh[j] * x;
            }
        }
        for (k, d) in dsq[n * c..][..c].iter_mut().enumerate() {
            *d = (0..r).map(|j| w1[j * c + k] * dh[j]).sum();
        }
    }
    // Pass 2: the branch's gradient through the scale, plus the squeeze's share (the mean's
    // gradient is the same for every element of a plane).
    let inv = 1.0 / plane.max(1) as f32;
    let da = residual::scaled_planes(&shortcut, &e.gates, plane, |i| dsq[i] * inv);
    SeGrads {
        a: da,
        w1: dw1,
        b1: db1,
        w2: dw2,
        b2: db2,
        shortcut,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
