//! The 1x1 kernel against Burn's reference `conv2d` (forward and input gradient; forward at
//! strides 2 and 3) and against the im2col + GEMM path (each part of the epilogue alone and
//! all together), in pools of 1, 2 and 4 workers so that every way of cutting the columns
//! into blocks and channel chunks runs. Skipped, with a message, on a CPU without AVX2 and
//! FMA.

mod common;
use common::{assert_close, burn_reference, check_in_pools, panic_message, pseudo_random, values};

use burn::tensor::module::conv2d as reference_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_kernels::pointwise;
use cnnzoo_kernels::{ConvGeometry, Epilogue, conv, im2col};

/// Sums in another order than the reference's: observed errors are about 1e-7 of the
/// output's magnitude; a dropped or misplaced column is off by more than 1e-2.
const TOL: f32 = 1e-5;

/// `[N, C, H, W]` and output channels.
type Case = ([usize; 4], usize);

const CASES: &[Case] = &[
    // Channels not a multiple of 4 (the last output rows through the spare tile), a map that
    // is not a whole number of 24-column tiles.
    ([2, 5, 9, 13], 7),
    // A tile that ends one column past its image (47 = 24 + 23): it must not be written in
    // place.
    ([3, 8, 1, 47], 8),
    // Tiny maps: every tile spans several images.
    ([3, 3, 1, 2], 4),
    ([5, 6, 3, 3], 9),
    // ResNet-50's last-stage reduce shape, smaller: 7x7 maps, tiles across image boundaries.
    ([8, 96, 7, 7], 64),
    // Few columns over many channels: output channels split between workers.
    ([1, 256, 14, 14], 100),
    // Many columns: several blocks per worker, whole tiles written in place.
    ([2, 64, 56, 56], 32),
];

/// Strided 1x1s (forward only): `[N, C, H, W]`, output channels, stride.
const STRIDED: &[([usize; 4], usize, usize)] = &[
    // ResNet-50's projection shortcut shape, smaller.
    ([2, 16, 14, 14], 32, 2),
    // Odd sizes: the last row and column are read, then the map ends.
    ([3, 5, 9, 7], 6, 2),
    ([1, 8, 10, 8], 12, 3),
];

/// Convolutions through im2col + the 1x1 kernel (forward only): `[N, C, H, W]`, output
/// channels, kernel, stride, padding `(begin, end)` per axis, dilation.
type Gathered = (
    [usize; 4],
    usize,
    [usize; 2],
    [usize; 2],
    [(usize, usize); 2],
    [usize; 2],
);

const GATHERED: &[Gathered] = &[
    // ResNet-50's strided 3x3, smaller; then on an odd map (the last column and row are read
    // or padded).
    ([2, 12, 14, 14], 16, [3, 3], [2, 2], [(1, 1); 2], [1, 1]),
    ([3, 5, 9, 11], 7, [3, 3], [2, 2], [(1, 1); 2], [1, 1]),
    // The stem's 7x7, stride 2, padding 3; a stride of 3 with more padding than stride.
    ([1, 3, 20, 18], 8, [7, 7], [2, 2], [(3, 3); 2], [1, 1]),
    ([2, 4, 13, 10], 6, [3, 3], [3, 3], [(2, 2); 2], [1, 1]),
    // Non-square kernel, asymmetric stride and padding, dilation.
    ([2, 6, 11, 9], 5, [2, 3], [1, 2], [(0, 1), (2, 0)], [1, 1]),
    ([2, 4, 12, 12], 9, [3, 3], [1, 1], [(2, 2); 2], [2, 2]),
    // A 7x7 map at stride 1 (ResNet-50's last 3x3s in training): tiles across images.
    ([5, 16, 7, 7], 12, [3, 3], [1, 1], [(1, 1); 2], [1, 1]),
];

fn gathered_geometry(&(shape, out, kernel, stride, padding, dilation): &Gathered) -> ConvGeometry {
    ConvGeometry {
        stride,
        padding,
        dilation,
        ..ConvGeometry::new(shape, out, kernel)
    }
}

fn geometry(c: &Case) -> ConvGeometry {
    ConvGeometry::new(c.0, c.1, [1, 1])
}

fn skip() -> bool {
    if !pointwise::supports(&geometry(&CASES[0])) {
        eprintln!("skipped: this CPU has no AVX2 + FMA, so the 1x1 kernel never runs here");
        return true;
    }
    false
}

/// The kernel's output and input gradient against the expected ones in pools of 1, 2 and 4
/// workers.
fn check_pointwise(
    what: &str,
    g: &ConvGeometry,
    (x, w, dy): (&[f32], &[f32], &[f32]),
    epilogue: Epilogue,
    want: (&[f32], &[f32]),
) {
    check_in_pools(what, ["y", "dx"], want, TOL, || {
        (
            pointwise::forward_with(g, x, w, epilogue),
            pointwise::backward_data(g, dy, w),
        )
    });
}

#[test]
fn pointwise_matches_burn_forward_and_input_gradient() {
    if skip() {
        return;
    }
    let device = Device::flex().autodiff();
    device.seed(12);
    for (i, c) in CASES.iter().enumerate() {
        let g = geometry(c);
        let r = burn_reference(
            &device,
            c.0,
            [c.1, c.0[1], 1, 1],
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        check_pointwise(
            &format!("case {i}"),
            &g,
            (&r.x, &r.w, &r.dy),
            Epilogue::default(),
            (&r.y, &r.dx),
        );
    }
}

#[test]
fn pointwise_matches_gemm_with_each_part_of_the_epilogue() {
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
        let want_dx = im2col::backward_data(&g, &dy, &w);
        let epilogues = [
            ("bias", Some(&bias[..]), None, false),
            ("residual", None, Some(&residual[..]), false),
            ("relu", None, None, true),
            ("all", Some(&bias[..]), Some(&residual[..]), true),
        ];
        for (name, bias, residual, relu) in epilogues {
            let epilogue = Epilogue {
                bias,
                residual,
                relu,
            };
            let want_y = im2col::forward_with(&g, &x, &w, epilogue);
            if relu {
                assert!(
                    want_y.contains(&0.0) && want_y.iter().any(|v| *v > 0.0),
                    "case {i}: the ReLU should clip some outputs and keep others"
                );
            }
            check_pointwise(
                &format!("case {i}, {name}"),
                &g,
                (&x, &w, &dy),
                epilogue,
                (&want_y, &want_dx),
            );
        }
    }
}

#[test]
fn strided_pointwise_matches_burn_and_gemm() {
    if skip() {
        return;
    }
    let device = Device::flex();
    device.seed(13);
    for (i, &(shape, out, stride)) in STRIDED.iter().enumerate() {
        let g = ConvGeometry {
            stride: [stride, stride],
            ..geometry(&(shape, out))
        };
        assert!(pointwise::applies(&g) && !pointwise::supports_input_gradient(&g));
        let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(
            [out, shape[1], 1, 1],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y = reference_conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([stride, stride], [0, 0], [1, 1], 1),
        );
        let (xv, wv, want_y) = (values(x), values(w), values(y));
        let bias = pseudo_random(out, 9);
        let residual = pseudo_random(g.output_len(), 10);
        let epilogue = Epilogue {
            bias: Some(&bias),
            residual: Some(&residual),
            relu: true,
        };
        let want_fused = im2col::forward_with(&g, &xv, &wv, epilogue);
        let what = format!("strided case {i}");
        check_in_pools(
            &what,
            ["y", "with epilogue"],
            (&want_y, &want_fused),
            TOL,
            || {
                (
                    pointwise::forward_with(&g, &xv, &wv, Epilogue::default()),
                    pointwise::forward_with(&g, &xv, &wv, epilogue),
                )
            },
        );
    }
}

#[test]
fn gathered_convolutions_match_burn_and_gemm() {
    if skip() {
        return;
    }
    let device = Device::flex();
    device.seed(14);
    for (i, case) in GATHERED.iter().enumerate() {
        let g = gathered_geometry(case);
        assert!(pointwise::supports_gathered(&g), "case {i}");
        // Burn's ConvOptions pads both ends alike: the reference pads the input itself.
        let x: Tensor<4> = Tensor::random(g_shape(&g), Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(
            [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let padded = x.clone().pad(g.padding, 0.0);
        let y = reference_conv2d(
            padded,
            w.clone(),
            None,
            ConvOptions::new(g.stride, [0, 0], g.dilation, 1),
        );
        let (xv, wv, want_y) = (values(x), values(w), values(y));
        assert_eq!(want_y.len(), g.output_len(), "case {i}: reference shape");
        let bias = pseudo_random(g.out_channels, 11);
        let residual = pseudo_random(g.output_len(), 12);
        let epilogue = Epilogue {
            bias: Some(&bias),
            residual: Some(&residual),
            relu: true,
        };
        let want_fused = im2col::forward_with(&g, &xv, &wv, epilogue);
        assert!(want_fused.contains(&0.0) && want_fused.iter().any(|v| *v > 0.0));
        check_in_pools(
            &format!("gathered case {i}"),
            ["y", "with epilogue"],
            (&want_y, &want_fused),
            TOL,
            || {
                (
                    pointwise::forward_gathered_with(&g, &xv, &wv, Epilogue::default()),
                    pointwise::forward_gathered_with(&g, &xv, &wv, epilogue),
                )
            },
        );
    }
}

fn g_shape(g: &ConvGeometry) -> [usize; 4] {
    [g.batch, g.in_channels, g.in_size[0], g.in_size[1]]
}

#[test]
fn conv_dispatch_takes_the_gathered_path_where_it_applies() {
    if skip() {
        return;
    }
    // ResNet-50's first strided 3x3 at a quarter of its channels: too many weights for the
    // direct kernel, enough columns (8 x 7 x 7 = 392, 16 tiles) for the 1x1 kernel.
    let g = ConvGeometry {
        stride: [2, 2],
        padding: [(1, 1); 2],
        ..ConvGeometry::new([8, 96, 14, 14], 96, [3, 3])
    };
    assert!(pointwise::applies_gathered(&g));
    let x = pseudo_random(g.input_len(), 13);
    let w = pseudo_random(g.weight_len(), 14);
    let y = conv::conv2d_forward(&g, &x, &w);
    assert_eq!(
        y,
        pointwise::forward_gathered_with(&g, &x, &w, Epilogue::default())
    );
    assert_close("dispatched y", &y, &im2col::forward(&g, &x, &w), TOL);
    // Too few columns (the 512-channel one at batch 1: 49), or an im2col matrix over the
    // bound, or groups: the GEMM path stays.
    let few = ConvGeometry {
        batch: 1,
        in_size: [13, 13],
        ..g
    };
    let huge = ConvGeometry {
        batch: 256,
        in_channels: 512,
        in_size: [28, 28],
        ..g
    };
    let grouped = ConvGeometry { groups: 4, ..g };
    assert!(pointwise::supports_gathered(&few) && !pointwise::applies_gathered(&few));
    assert!(pointwise::supports_gathered(&huge) && !pointwise::applies_gathered(&huge));
    assert!(!pointwise::supports_gathered(&grouped) && !pointwise::applies_gathered(&grouped));
}

#[test]
fn conv_dispatch_takes_pointwise_where_it_applies() {
    if skip() {
        return;
    }
    let g = geometry(&([4, 64, 14, 14], 256));
    assert!(pointwise::applies(&g));
    let x = pseudo_random(g.input_len(), 6);
    let w = pseudo_random(g.weight_len(), 7);
    let dy = pseudo_random(g.output_len(), 8);
    let y = conv::conv2d_forward(&g, &x, &w);
    assert_eq!(y, pointwise::forward_with(&g, &x, &w, Epilogue::default()));
    assert_close("dispatched y", &y, &im2col::forward(&g, &x, &w), TOL);
    let dx = conv::conv2d_backward_data(&g, &dy, &w);
    assert_eq!(dx, pointwise::backward_data(&g, &dy, &w));
    assert_close(
        "dispatched dx",
        &dx,
        &im2col::backward_data(&g, &dy, &w),
        TOL,
    );
    // On 1x1 maps (SE's excitation) the GEMM path's one matrix product over the batch stays.
    let fc = geometry(&([8, 256, 1, 1], 16));
    assert!(pointwise::supports(&fc) && !pointwise::applies(&fc));
}

#[test]
fn pointwise_refuses_mismatched_operands_and_declines_other_convolutions() {
    if skip() {
        return;
    }
    let g = geometry(&([2, 8, 5, 5], 12));
    let (x, w) = (vec![0.0; g.input_len()], vec![0.0; g.weight_len()]);
    let short_bias = vec![0.0; 11];
    let bias = Epilogue {
        bias: Some(&short_bias),
        ..Epilogue::default()
    };
    let message =
        |f: &(dyn Fn() + std::panic::RefUnwindSafe)| panic_message(f).expect("should panic");
    let none = Epilogue::default();
    let checks = [
        (
            "one bias per output channel",
            message(&|| drop(pointwise::forward_with(&g, &x, &w, bias))),
        ),
        (
            "input length",
            message(&|| drop(pointwise::forward_with(&g, &x[1..], &w, none))),
        ),
        (
            "output-gradient length",
            message(&|| drop(pointwise::backward_data(&g, &x, &w))),
        ),
        (
            "does not support",
            message(&|| {
                let three = ConvGeometry {
                    kernel: [3, 3],
                    ..g
                };
                drop(pointwise::forward_with(&three, &x, &w, none));
            }),
        ),
        (
            "does not support the input gradient",
            message(&|| {
                let strided = ConvGeometry {
                    stride: [2, 2],
                    ..g
                };
                let dy = vec![0.0; strided.output_len()];
                drop(pointwise::backward_data(&strided, &dy, &w));
            }),
        ),
        // The gathered path checks the same operands, and refuses groups.
        (
            "weight length",
            message(&|| {
                let three = ConvGeometry {
                    kernel: [3, 3],
                    ..g
                };
                drop(pointwise::forward_gathered_with(&three, &x, &w, none));
            }),
        ),
        (
            "one bias per output channel",
            message(&|| drop(pointwise::forward_gathered_with(&g, &x, &w, bias))),
        ),
        (
            "does not support",
            message(&|| {
                let grouped = ConvGeometry { groups: 4, ..g };
                let wg = vec![0.0; grouped.weight_len()];
                drop(pointwise::forward_gathered_with(&grouped, &x, &wg, none));
            }),
        ),
    ];
    for (want, got) in checks {
        assert!(got.contains(want), "{got:?} should say {want:?}");
    }
    let declined = [
        ConvGeometry {
            kernel: [3, 3],
            ..g
        },
        ConvGeometry {
            padding: [(1, 1); 2],
            ..g
        },
        ConvGeometry {
            in_channels: 8,
            out_channels: 12,
            groups: 4,
            ..g
        },
        ConvGeometry {
            dilation: [2, 2],
            ..g
        },
        ConvGeometry { batch: 0, ..g },
    ];
    for d in declined {
        assert!(!pointwise::supports(&d), "{d:?} should be declined");
    }
    let strided = ConvGeometry {
        stride: [2, 2],
        ..g
    };
    assert!(pointwise::supports(&strided) && !pointwise::supports_input_gradient(&strided));
}
