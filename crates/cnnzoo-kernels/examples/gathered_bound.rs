//! Times the gathered path (the 1x1 kernel over the batch's im2col matrix,
//! `pointwise::forward_gathered_with`) against im2col + GEMM (`im2col::forward_with`) on
//! the convolutions the other kernels leave to GEMM: ResNet-50's strided 3x3s at batch 1 and 8
//! and its last-stage 3x3 at batch 8, with the BN-folded inference epilogue (bias and ReLU), in
//! alternating pairs of runs (the machine's speed drifts from minute to minute; pairs run back
//! to back compare the two where separate series do not).
//!
//! Usage: `cargo run --release --example gathered_bound` (`PAIRS` sets the pairs per shape).

mod common;
use common::alternate;

use cnnzoo_kernels::pointwise;
use cnnzoo_kernels::{ConvGeometry, Epilogue, im2col};

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, step: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * step) % 1000) as f32 * 1e-3 - 0.5)
        .collect()
}

fn main() {
    let pairs = common::pairs(31);
    println!(
        "threads: {}, pairs per shape: {pairs}",
        rayon::current_num_threads()
    );
    // (batch, channels in and out, input side, stride)
    for (batch, c, hw, stride) in [
        (8, 128, 56, 2),
        (8, 256, 28, 2),
        (8, 512, 14, 2),
        (8, 512, 7, 1),
        (1, 128, 56, 2),
        (1, 256, 28, 2),
        (1, 512, 14, 2),
    ] {
        let g = ConvGeometry {
            stride: [stride, stride],
            padding: [(1, 1); 2],
            ..ConvGeometry::new([batch, c, hw, hw], c, [3, 3])
        };
        if !pointwise::supports_gathered(&g) {
            println!("skipped: this CPU has no AVX2 + FMA");
            return;
        }
        let x = values(g.input_len(), 7919);
        let w = values(g.weight_len(), 104_729);
        let bias = values(c, 31);
        let e = Epilogue {
            bias: Some(&bias),
            residual: None,
            relu: true,
        };
        let gemm = || im2col::forward_with(&g, &x, &w, e);
        let gathered = || pointwise::forward_gathered_with(&g, &x, &w, e);
        let diff = gemm()
            .iter()
            .zip(&gathered())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (gemm_ms, gathered_ms, wins) = alternate(pairs, gemm, gathered);
        let [oh, ow] = g.out_size().expect("valid geometry");
        println!(
            "b{batch} {c:3} channels {hw:2}x{hw:<2} stride {stride} ({:4} columns): gemm {:6.2} ms, \
             gathered {:6.2} ms (medians); gathered faster in {wins}/{pairs} pairs; max diff \
             {diff:.1e}; applies: {}",
            batch * oh * ow,
            gemm_ms,
            gathered_ms,
            pointwise::applies_gathered(&g),
        );
    }
}
