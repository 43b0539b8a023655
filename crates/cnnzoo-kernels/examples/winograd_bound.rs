//! Times Winograd F(4x4, 3x3) against the direct kernel on the shapes around
//! `winograd::applies`' bound on tiles per batch (ResNet-50's 3x3s at batch 1 to 3), in
//! alternating pairs of runs: on a shared machine whose speed drifts from minute to minute,
//! pairs run back to back compare the two paths where separate series of runs do not.
//!
//! Then, for inference, which keeps the transformed weights from call to call: Winograd from
//! kept weights (`winograd::forward_transformed`) against the path `conv::conv2d_forward_with`
//! takes without them, on ResNet-50's stride-1 3x3s at batch 1 and 8, around
//! `winograd::applies_transformed`' bounds.
//!
//! Usage: `cargo run --release --example winograd_bound` (`PAIRS` sets the pairs per shape).

mod common;
use common::alternate;

use cnnzoo_kernels::{ConvGeometry, Epilogue, conv};
use cnnzoo_kernels::{direct, winograd};

fn main() {
    let pairs = common::pairs(40);
    println!(
        "threads: {}, pairs per shape: {pairs}",
        rayon::current_num_threads()
    );
    // (batch, channels in and out, map side)
    for (batch, c, hw) in [
        (1, 64, 56),
        (1, 128, 28),
        (1, 256, 14),
        (2, 256, 14),
        (3, 256, 14),
    ] {
        let g = geometry(batch, c, hw);
        if !winograd::supports(&g) || !direct::supports(&g) {
            println!("skipped: this CPU has no AVX2 + FMA");
            return;
        }
        let (x, w) = operands(&g);
        let (direct, wino, wins) = alternate(
            pairs,
            || direct::forward_with(&g, &x, &w, Epilogue::default()),
            || winograd::forward_with(&g, &x, &w, Epilogue::default()),
        );
        let tiles = batch * hw.div_ceil(4) * hw.div_ceil(4);
        println!(
            "b{batch} {c:3} channels {hw:2}x{hw:<2} ({tiles:3} tiles): direct {direct:5.2} ms, \
             winograd {wino:5.2} ms (medians); winograd faster in {wins}/{pairs} pairs; \
             applies: {}",
            winograd::applies(&g),
        );
    }
    println!("kept transformed weights (inference):");
    for (batch, c, hw) in [
        (8, 64, 56),
        (8, 128, 28),
        (8, 256, 14),
        (8, 512, 7),
        (1, 256, 14),
        (1, 512, 7),
        (2, 512, 7),
        (4, 512, 7),
    ] {
        let g = geometry(batch, c, hw);
        let (x, w) = operands(&g);
        let u = winograd::forward_weights(&g, &w);
        let (plain, kept, wins) = alternate(
            pairs,
            || conv::conv2d_forward_with(&g, &x, &w, Epilogue::default()),
            || winograd::forward_transformed(&g, &x, &u, Epilogue::default()),
        );
        let tiles = batch * hw.div_ceil(4) * hw.div_ceil(4);
        println!(
            "b{batch} {c:3} channels {hw:2}x{hw:<2} ({tiles:3} tiles): without kept weights \
             ({}) {plain:5.2} ms, winograd from kept weights {kept:5.2} ms (medians); kept \
             faster in {wins}/{pairs} pairs; applies_transformed: {}",
            if winograd::applies(&g) {
                "winograd"
            } else {
                "other paths"
            },
            winograd::applies_transformed(&g),
        );
    }
}

/// A stride-1 3x3 convolution with padding 1 and `c` channels in and out.
fn geometry(batch: usize, c: usize, hw: usize) -> ConvGeometry {
    ConvGeometry {
        padding: [(1, 1); 2],
        ..ConvGeometry::new([batch, c, hw, hw], c, [3, 3])
    }
}

/// Deterministic input and weights for `g`.
fn operands(g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let x = (0..g.input_len()).map(|i| (i % 7) as f32 * 0.1).collect();
    let w = (0..g.weight_len()).map(|i| (i % 5) as f32 * 0.1).collect();
    (x, w)
}
