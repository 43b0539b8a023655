//! Winograd F(4x4, 3x3) against Burn's reference `conv2d` (forward and input gradient) and
//! against the im2col + GEMM path (the epilogue, padding that differs before and after), in
//! pools of 1, 2 and 4 workers so that every way of cutting the work into blocks and channel
//! chunks runs. Skipped, with a message, on a CPU without AVX2 and FMA.

mod common;
use common::{assert_close, burn_reference, check_in_pools, panic_message, pseudo_random};

use burn::tensor::Device;
use burn::tensor::ops::ConvOptions;
use cnnzoo_kernels::winograd;
use cnnzoo_kernels::{ConvGeometry, Epilogue, conv, im2col};

/// Rounding of the transforms: observed errors are about 1e-6 of the output's magnitude
/// here; a wrong transform constant or a misplaced tile is off by more than 1e-2.
const TOL: f32 = 2e-5;

/// `[N, C, H, W]`, output channels, padding `[(top, bottom), (left, right)]`.
type Case = ([usize; 4], usize, [(usize, usize); 2]);

const CASES: &[Case] = &[
    // Maps that are not a whole number of 4x4 tiles, channels not a multiple of 4.
    ([2, 5, 9, 13], 7, [(1, 1), (1, 1)]),
    ([1, 3, 6, 6], 1, [(1, 1), (1, 1)]),
    // No padding, the most padding, padding that differs per side.
    ([2, 8, 7, 10], 6, [(0, 0), (0, 0)]),
    ([1, 4, 5, 5], 9, [(2, 2), (2, 2)]),
    ([2, 6, 8, 11], 5, [(0, 2), (1, 0)]),
    // Rows of 9 tiles: runs of eight tiles and a remainder, blocks that start and end inside
    // a tile row and span images.
    ([3, 16, 30, 35], 12, [(1, 1), (1, 1)]),
    // ResNet-50's first-stage 3x3 (64 channels, 56x56) at batch 1.
    ([1, 64, 56, 56], 64, [(1, 1), (1, 1)]),
    // Few tiles over many channels: one block, output channels split between workers.
    ([1, 128, 14, 14], 100, [(1, 1), (1, 1)]),
    // Rows of 4 and of 2 tiles whose last tile reads the map's last column (ResNet-20's 16x16
    // and 8x8 stages): 2 and 4 tile rows share a vector, across images, with a last vector
    // that the block fills only partly; and rows of 2 tiles on 7x7 maps with the tiles'
    // last output row dropped.
    ([3, 4, 16, 16], 5, [(1, 1), (1, 1)]),
    ([7, 3, 8, 8], 6, [(1, 1), (1, 1)]),
    ([3, 4, 7, 7], 5, [(1, 1), (1, 1)]),
];

fn geometry(c: &Case) -> ConvGeometry {
    ConvGeometry {
        padding: c.2,
        ..ConvGeometry::new(c.0, c.1, [3, 3])
    }
}

fn skip() -> bool {
    if !winograd::supports(&geometry(&CASES[0])) {
        eprintln!("skipped: this CPU has no AVX2 + FMA, so the Winograd kernels never run here");
        return true;
    }
    false
}

/// Winograd's output and input gradient against the expected ones in pools of 1, 2 and 4
/// workers (different cuts into blocks and channel chunks).
fn check_winograd(
    what: &str,
    g: &ConvGeometry,
    (x, w, dy): (&[f32], &[f32], &[f32]),
    epilogue: Epilogue,
    want: (&[f32], &[f32]),
) {
    check_in_pools(what, ["y", "dx"], want, TOL, || {
        (
            winograd::forward_with(g, x, w, epilogue),
            winograd::backward_data(g, dy, w),
        )
    });
}

#[test]
fn winograd_matches_burn_forward_and_input_gradient() {
    if skip() {
        return;
    }
    let device = Device::flex().autodiff();
    device.seed(11);
    for (i, c) in CASES.iter().enumerate() {
        let g = geometry(c);
        // Burn's options take one padding per axis: only the symmetric cases.
        if c.2.iter().any(|(a, b)| a != b) {
            continue;
        }
        let r = burn_reference(
            &device,
            c.0,
            [c.1, c.0[1], 3, 3],
            ConvOptions::new([1, 1], [c.2[0].0, c.2[1].0], [1, 1], 1),
        );
        check_winograd(
            &format!("case {i}"),
            &g,
            (&r.x, &r.w, &r.dy),
            Epilogue::default(),
            (&r.y, &r.dx),
        );
    }
}

#[test]
fn winograd_matches_gemm_with_epilogue_and_uneven_padding() {
    if skip() {
        return;
    }
    for (i, c) in CASES.iter().enumerate() {
        let g = geometry(c);
        let x = pseudo_random(g.input_len(), 1);
        let w = pseudo_random(g.weight_len(), 2);
        let dy = pseudo_random(g.output_len(), 3);
        let bias = pseudo_random(g.out_channels, 4);
        let residual = pseudo_random(g.output_len(), 5);
        let epilogue = Epilogue {
            bias: Some(&bias),
            residual: Some(&residual),
            relu: true,
        };
        let want_y = im2col::forward_with(&g, &x, &w, epilogue);
        let want_dx = im2col::backward_data(&g, &dy, &w);
        assert!(
            want_y.contains(&0.0) && want_y.iter().any(|v| *v > 0.0),
            "case {i}: the ReLU should clip some outputs and keep others"
        );
        check_winograd(
            &format!("case {i}"),
            &g,
            (&x, &w, &dy),
            epilogue,
            (&want_y, &want_dx),
        );
        // Inference's path from kept transformed weights is the same arithmetic.
        let u = winograd::forward_weights(&g, &w);
        assert_eq!(
            winograd::forward_transformed(&g, &x, &u, epilogue),
            winograd::forward_with(&g, &x, &w, epilogue),
            "case {i}: from kept weights"
        );
    }
}

#[test]
fn conv_dispatch_takes_winograd_where_it_applies() {
    if skip() {
        return;
    }
    // ResNet-50's third-stage 3x3 at batch 2 has too few tiles; at batch 3 it applies, as
    // does its second-stage one at batch 1.
    let stage2 = geometry(&([1, 128, 28, 28], 128, [(1, 1), (1, 1)]));
    assert!(winograd::applies(&stage2), "49 tiles of 128 channels");
    let mut g = geometry(&([2, 256, 14, 14], 256, [(1, 1), (1, 1)]));
    assert!(!winograd::applies(&g), "32 tiles: the direct kernel's");
    g.batch = 3;
    assert!(
        winograd::applies(&g),
        "48 tiles of 256 channels: Winograd's"
    );
    let x = pseudo_random(g.input_len(), 6);
    let w = pseudo_random(g.weight_len(), 7);
    let dy = pseudo_random(g.output_len(), 8);
    // Winograd's rounding differs from the GEMM's: the dispatched result must be close to
    // the GEMM's and equal to Winograd's own.
    let y = conv::conv2d_forward(&g, &x, &w);
    assert_close("dispatched y", &y, &im2col::forward(&g, &x, &w), TOL);
    assert_eq!(y, winograd::forward_with(&g, &x, &w, Epilogue::default()));
    let dx = conv::conv2d_backward_data(&g, &dy, &w);
    assert_close(
        "dispatched dx",
        &dx,
        &im2col::backward_data(&g, &dy, &w),
        TOL,
    );
    assert_eq!(dx, winograd::backward_data(&g, &dy, &w));
    // Few channels (ResNet-20's first stage) and ResNet-50's last stage stay where they were.
    let small = geometry(&([128, 16, 32, 32], 16, [(1, 1), (1, 1)]));
    assert!(winograd::supports(&small) && !winograd::applies(&small));
    let last = geometry(&([8, 512, 7, 7], 512, [(1, 1), (1, 1)]));
    assert!(winograd::supports(&last) && !winograd::applies(&last));
}

#[test]
fn kept_transformed_weights_give_the_same_result() {
    if skip() {
        return;
    }
    // The weights transformed once serve any batch with the same channels.
    let g = geometry(&CASES[5]);
    let w = pseudo_random(g.weight_len(), 9);
    let u = winograd::forward_weights(&g, &w);
    assert_eq!(u.len(), winograd::transformed_len(&g));
    for batch in [1, 3] {
        let g = ConvGeometry { batch, ..g };
        let x = pseudo_random(g.input_len(), 10 + batch as u64);
        let want = winograd::forward_with(&g, &x, &w, Epilogue::default());
        let got = winograd::forward_transformed(&g, &x, &u, Epilogue::default());
        assert_eq!(got, want, "batch {batch}");
    }
    // A transform for other channels is refused.
    let other = ConvGeometry {
        out_channels: g.out_channels + 4,
        ..g
    };
    let x = pseudo_random(g.input_len(), 1);
    let msg = panic_message(|| {
        drop(winograd::forward_transformed(
            &other,
            &x,
            &u,
            Epilogue::default(),
        ));
    });
    assert!(msg.is_some_and(|m| m.contains("transformed weight length")));
}

#[test]
fn kept_weights_widen_winograd_to_the_layers_it_then_wins() {
    let g = |n: usize, c: usize, hw: usize| geometry(&([n, c, hw, hw], c, [(1, 1), (1, 1)]));
    // ResNet-50's last stage at batch 8 and third stage at batch 1; whatever `applies` takes.
    for (what, g) in [
        ("512 channels, 7x7, batch 8", g(8, 512, 7)),
        ("256 channels, 14x14, batch 1", g(1, 256, 14)),
        ("128 channels, 28x28, batch 1", g(1, 128, 28)),
    ] {
        assert!(winograd::applies_transformed(&g), "{what}");
    }
    assert!(!winograd::applies(&g(8, 512, 7)) && !winograd::applies(&g(1, 256, 14)));
    for (what, g) in [
        ("512 channels, 7x7, batch 1 (4 tiles)", g(1, 512, 7)),
        ("1024 channels", g(8, 1024, 14)),
        ("16 channels", g(8, 16, 32)),
        ("6x6 map", g(8, 64, 6)),
    ] {
        assert!(!winograd::applies_transformed(&g), "{what}");
    }
}

#[test]
fn mismatched_operands_are_refused_with_what_is_wrong() {
    if skip() {
        return;
    }
    let mut g = geometry(&([1, 128, 28, 28], 128, [(1, 1), (1, 1)]));
    g.batch = 2;
    assert!(winograd::applies(&g));
    let (x, w, dy) = (
        vec![0.0; g.input_len()],
        vec![0.0; g.weight_len()],
        vec![0.0; g.output_len()],
    );
    let (short_bias, short_residual) = (vec![0.0; 127], vec![0.0; g.output_len() - 1]);
    let bias = Epilogue {
        bias: Some(&short_bias),
        ..Epilogue::default()
    };
    let residual = Epilogue {
        residual: Some(&short_residual),
        ..Epilogue::default()
    };
    let none = Epilogue::default();
    let checks: [(&str, Option<String>); 7] = [
        (
            "one bias per output channel",
            panic_message(|| drop(winograd::forward_with(&g, &x, &w, bias))),
        ),
        (
            "one bias per output channel",
            panic_message(|| drop(conv::conv2d_forward_with(&g, &x, &w, bias))),
        ),
        (
            "residual of the output's shape",
            panic_message(|| drop(winograd::forward_with(&g, &x, &w, residual))),
        ),
        (
            "input length",
            panic_message(|| drop(winograd::forward_with(&g, &x[1..], &w, none))),
        ),
        (
            "weight length",
            panic_message(|| drop(winograd::forward_with(&g, &x, &w[1..], none))),
        ),
        (
            "output-gradient length",
            panic_message(|| drop(winograd::backward_data(&g, &dy[1..], &w))),
        ),
        (
            "does not support",
            panic_message(|| {
                let strided = ConvGeometry {
                    stride: [2, 2],
                    ..g
                };
                drop(winograd::forward_with(&strided, &x, &w, none));
            }),
        ),
    ];
    for (i, (want, got)) in checks.into_iter().enumerate() {
        let got = got.unwrap_or_else(|| panic!("check {i} ({want}) did not panic"));
        assert!(got.contains(want), "check {i}: {got:?} should say {want:?}");
    }
}

#[test]
fn winograd_declines_what_it_cannot_compute() {
    let base = geometry(&CASES[0]);
    let declined = [
        ConvGeometry {
            stride: [2, 2],
            ..base
        },
        ConvGeometry {
            in_channels: 6,
            out_channels: 6,
            groups: 2,
            ..base
        },
        ConvGeometry {
            kernel: [5, 5],
            padding: [(2, 2); 2],
            ..base
        },
        ConvGeometry {
            kernel: [1, 3],
            ..base
        },
        ConvGeometry {
            padding: [(3, 3), (1, 1)],
            ..base
        },
        ConvGeometry {
            dilation: [2, 2],
            ..base
        },
        ConvGeometry { batch: 0, ..base },
        ConvGeometry {
            in_size: [1, 1],
            padding: [(0, 0); 2],
            ..base
        },
    ];
    for g in declined {
        assert!(!winograd::supports(&g), "{g:?} should be declined");
    }
}
