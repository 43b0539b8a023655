//! Times each convolution pass (forward, backward-data, backward-weight) on the networks' layer
//! shapes: the im2col + GEMM path against the direct kernels, Winograd F(4x4, 3x3), the 1x1
//! kernel, and the 1x1 kernel over the batch's im2col matrix ("gathered", forward only) where
//! those support the shape. The choice `conv::conv2d_*` makes is printed per shape, so the
//! thresholds in `direct.rs` and `winograd.rs` can be checked against the numbers.
//!
//! Usage: `cargo run --release --example conv_bench` (set `RAYON_NUM_THREADS` to compare
//! thread counts, `ONLY` to a piece of a shape's label to time only the shapes it names).

use std::time::Instant;

use cnnzoo_kernels::{ConvGeometry, Epilogue, im2col};
use cnnzoo_kernels::{direct, pointwise, winograd};

fn best_ms(mut f: impl FnMut() -> Vec<f32>) -> (f64, Vec<f32>) {
    let mut times = Vec::new();
    let mut out = f();
    for _ in 0..7 {
        let t = Instant::now();
        out = std::hint::black_box(f());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The fastest run: the least disturbed by other work on a shared machine.
    (times.into_iter().fold(f64::INFINITY, f64::min), out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn main() {
    // (label, batch, in channels, out channels, input size, kernel, stride, groups)
    let only = std::env::var("ONLY").unwrap_or_default();
    let shapes = [
        ("resnet20 stage 1", 128, 16, 16, 32, 3, 1, 1),
        ("resnet20 stage 2", 128, 32, 32, 16, 3, 1, 1),
        ("resnet20 stage 3", 128, 64, 64, 8, 3, 1, 1),
        ("resnet20 down 1-2", 128, 16, 32, 32, 3, 2, 1),
        ("resnet20 down 2-3", 128, 32, 64, 16, 3, 2, 1),
        ("densenet-bc 3x3", 64, 48, 12, 32, 3, 1, 1),
        ("densenet-bc 3x3 s3", 64, 48, 12, 8, 3, 1, 1),
        ("resnext29 stage 1", 32, 512, 512, 32, 3, 1, 8),
        ("resnext29 stage 3", 32, 2048, 2048, 8, 3, 1, 8),
        ("resnet50 stem 7x7", 8, 3, 64, 224, 7, 2, 1),
        ("resnet50 stage 1", 8, 64, 64, 56, 3, 1, 1),
        ("resnet50 stage 2", 8, 128, 128, 28, 3, 1, 1),
        ("resnet50 down 1-2", 8, 128, 128, 56, 3, 2, 1),
        ("resnet50 stage 3", 8, 256, 256, 14, 3, 1, 1),
        ("resnet50 down 2-3", 8, 256, 256, 28, 3, 2, 1),
        ("resnet50 down 3-4", 8, 512, 512, 14, 3, 2, 1),
        ("resnet50 stage 4", 8, 512, 512, 7, 3, 1, 1),
        ("resnet50 stage 1 b1", 1, 64, 64, 56, 3, 1, 1),
        ("resnet50 stage 2 b1", 1, 128, 128, 28, 3, 1, 1),
        ("resnet50 stage 3 b1", 1, 256, 256, 14, 3, 1, 1),
        ("resnet50 down 1-2 b1", 1, 128, 128, 56, 3, 2, 1),
        ("resnet50 down 2-3 b1", 1, 256, 256, 28, 3, 2, 1),
        ("resnet50 down 3-4 b1", 1, 512, 512, 14, 3, 2, 1),
        ("resnet50 1x1 64-256", 8, 64, 256, 56, 1, 1, 1),
        ("resnet50 1x1 256-64", 8, 256, 64, 56, 1, 1, 1),
        ("resnet50 1x1 512-128", 8, 512, 128, 28, 1, 1, 1),
        ("resnet50 1x1 128-512", 8, 128, 512, 28, 1, 1, 1),
        ("resnet50 1x1 1024-256", 8, 1024, 256, 14, 1, 1, 1),
        ("resnet50 1x1 256-1024", 8, 256, 1024, 14, 1, 1, 1),
        ("resnet50 1x1 2048-512", 8, 2048, 512, 7, 1, 1, 1),
        ("resnet50 1x1 512-2048", 8, 512, 2048, 7, 1, 1, 1),
        ("resnet50 1x1 s2 1024-2048", 8, 1024, 2048, 14, 1, 2, 1),
        ("resnet50 1x1 256-1024 b1", 1, 256, 1024, 14, 1, 1, 1),
        ("resnet50 1x1 2048-512 b1", 1, 2048, 512, 7, 1, 1, 1),
        ("densenet-bc 1x1", 64, 120, 48, 32, 1, 1, 1),
        ("seresnext50 stage 1", 8, 128, 128, 56, 3, 1, 32),
        ("seresnext50 stage 4", 8, 1024, 1024, 7, 3, 1, 32),
        ("seresnext50 down 3-4", 8, 1024, 1024, 14, 3, 2, 32),
    ];
    println!("threads: {}", rayon::current_num_threads());
    for (label, batch, cin, cout, hw, ks, stride, groups) in shapes {
        if !label.contains(only.as_str()) {
            continue;
        }
        let g = ConvGeometry {
            batch,
            in_channels: cin,
            in_size: [hw, hw],
            out_channels: cout,
            kernel: [ks, ks],
            stride: [stride, stride],
            padding: [(ks / 2, ks / 2); 2],
            dilation: [1, 1],
            groups,
        };
        let x = values(g.input_len(), 1);
        let w = values(g.weight_len(), 2);
        let dy = values(g.output_len(), 3);
        let (f_g, y_g) = best_ms(|| im2col::forward(&g, &x, &w));
        let (d_g, dx_g) = best_ms(|| im2col::backward_data(&g, &dy, &w));
        let (w_g, dw_g) = best_ms(|| im2col::backward_weight(&g, &x, &dy));
        print!(
            "{label:20} gemm   fwd {f_g:7.2} ms  bwd-data {d_g:7.2} ms  bwd-weight {w_g:7.2} ms"
        );
        if direct::supports(&g) {
            let (f_d, y_d) = best_ms(|| direct::forward(&g, &x, &w));
            // A strided input gradient stays on the GEMM path (timed once above).
            let (d_d, dx_d) = if direct::supports_input_gradient(&g) {
                best_ms(|| direct::backward_data(&g, &dy, &w))
            } else {
                (d_g, dx_g.clone())
            };
            let (w_d, dw_d) = best_ms(|| direct::backward_weight(&g, &x, &dy));
            print!(
                "\n{:20} direct fwd {f_d:7.2} ms  bwd-data {d_d:7.2} ms  bwd-weight {w_d:7.2} ms  \
                 speed-up {:.2}x (max diff {:.1e} {:.1e} {:.1e})",
                "",
                (f_g + d_g + w_g) / (f_d + d_d + w_d),
                max_diff(&y_g, &y_d),
                max_diff(&dx_g, &dx_d),
                max_diff(&dw_g, &dw_d),
            );
        }
        if pointwise::supports(&g) {
            let (f_p, y_p) = best_ms(|| pointwise::forward_with(&g, &x, &w, Epilogue::default()));
            // A strided input gradient stays on the GEMM path (timed once above).
            let (d_p, dx_p) = if pointwise::supports_input_gradient(&g) {
                best_ms(|| pointwise::backward_data(&g, &dy, &w))
            } else {
                (d_g, dx_g.clone())
            };
            print!(
                "\n{:20} 1x1    fwd {f_p:7.2} ms  bwd-data {d_p:7.2} ms  (max diff {:.1e} {:.1e})",
                "",
                max_diff(&y_g, &y_p),
                max_diff(&dx_g, &dx_p),
            );
        }
        if winograd::supports(&g) {
            let (f_w, y_w) = best_ms(|| winograd::forward_with(&g, &x, &w, Epilogue::default()));
            let (d_w, dx_w) = best_ms(|| winograd::backward_data(&g, &dy, &w));
            print!(
                "\n{:20} winograd fwd {f_w:5.2} ms  bwd-data {d_w:7.2} ms  \
                 (max diff {:.1e} {:.1e}; largest |y| {:.1e})",
                "",
                max_diff(&y_g, &y_w),
                max_diff(&dx_g, &dx_w),
                y_g.iter().fold(0.0f32, |m, v| m.max(v.abs())),
            );
        }
        if pointwise::supports_gathered(&g) && g.kernel != [1, 1] {
            let (f_c, y_c) =
                best_ms(|| pointwise::forward_gathered_with(&g, &x, &w, Epilogue::default()));
            print!(
                "\n{:20} gathered fwd {f_c:5.2} ms  (max diff {:.1e})",
                "",
                max_diff(&y_g, &y_c),
            );
        }
        println!("; conv2d_* takes {}", choice(&g));
    }
}

/// Which path `conv::conv2d_*` takes for each pass.
fn choice(g: &ConvGeometry) -> String {
    let pick = |winograd: bool, pointwise: bool, direct: bool| {
        if winograd {
            "winograd"
        } else if pointwise {
            "1x1"
        } else if direct {
            "direct"
        } else {
            "gemm"
        }
    };
    // The gathered path comes after the others, for the forward pass only.
    let forward = match pick(
        winograd::applies(g),
        pointwise::applies(g),
        direct::applies(g),
    ) {
        "gemm" if pointwise::applies_gathered(g) => "gathered",
        other => other,
    };
    // Winograd takes both the forward pass and the input gradient, or neither.
    let wino = winograd::applies(g);
    format!(
        "{} / {} / {} (fwd / bwd-data / bwd-weight)",
        forward,
        pick(
            wino,
            pointwise::applies_to_input_gradient(g),
            direct::applies_to_input_gradient(g)
        ),
        pick(false, false, direct::applies_to_weight_gradient(g)),
    )
}
