//! The direct convolution kernels against Burn's reference `conv2d` (forward and both gradients
//! at stride 1; forward and weight gradient through the phase split at larger strides), and
//! against the im2col + GEMM path where Burn has no counterpart (padding that differs before
//! and after). Skipped, with a message, on a CPU without AVX2 and FMA.

mod common;
use common::{assert_close, values};

use burn::tensor::module::conv2d as reference_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_kernels::direct;
use cnnzoo_kernels::{ConvGeometry, im2col};

/// `[N, C, H, W]`, output channels, kernel, symmetric padding, groups.
type Case = ([usize; 4], usize, [usize; 2], [usize; 2], usize);

const CASES: &[Case] = &[
    // ResNet-20's 3x3 on a map whose rows are not a whole number of vectors.
    ([3, 16, 5, 7], 16, [3, 3], [1, 1], 1),
    // Output channels that do not fill the last register block; one input channel.
    ([2, 3, 9, 9], 5, [3, 3], [1, 1], 1),
    ([2, 1, 6, 6], 7, [3, 3], [1, 1], 1),
    // DenseNet's growth-rate 3x3 (12 outputs from 48 inputs).
    ([2, 48, 4, 4], 12, [3, 3], [1, 1], 1),
    // ResNeXt's grouped 3x3 (6 outputs per group).
    ([2, 8, 6, 5], 12, [3, 3], [1, 1], 2),
    // Inception's 5x5, an unpadded 3x3, non-square kernels, a 7x7 (49 taps).
    ([2, 4, 7, 7], 6, [5, 5], [2, 2], 1),
    ([2, 4, 6, 8], 4, [3, 3], [0, 0], 1),
    ([2, 3, 5, 9], 4, [1, 3], [0, 1], 1),
    ([2, 3, 9, 5], 4, [3, 1], [1, 0], 1),
    ([1, 2, 9, 9], 3, [7, 7], [3, 3], 1),
    // Small maps over 64 channels: several images per weight-gradient pass, and a last pass
    // with fewer images than the others.
    ([13, 64, 8, 8], 64, [3, 3], [1, 1], 1),
];

fn geometry(c: &Case, padding: [(usize, usize); 2]) -> ConvGeometry {
    ConvGeometry {
        batch: c.0[0],
        in_channels: c.0[1],
        in_size: [c.0[2], c.0[3]],
        out_channels: c.1,
        kernel: c.2,
        stride: [1, 1],
        padding,
        dilation: [1, 1],
        groups: c.4,
    }
}

fn skip() -> bool {
    let probe = geometry(&CASES[0], [(1, 1); 2]);
    if !direct::supports(&probe) {
        eprintln!("skipped: this CPU has no AVX2 + FMA, so the direct kernels never run here");
        return true;
    }
    false
}

#[test]
fn direct_matches_burn_forward_and_gradients() {
    if skip() {
        return;
    }
    let device = Device::flex().autodiff();
    device.seed(7);
    for (i, c) in CASES.iter().enumerate() {
        let g = geometry(c, [(c.3[0], c.3[0]), (c.3[1], c.3[1])]);
        assert!(
            direct::supports(&g),
            "case {i} should take the direct kernels"
        );
        let w_shape = [c.1, c.0[1] / c.4, c.2[0], c.2[1]];
        let x: Tensor<4> = Tensor::random(c.0, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
        let (xg, wg) = (x.clone().require_grad(), w.clone().require_grad());
        let y = reference_conv2d(
            xg.clone(),
            wg.clone(),
            None,
            ConvOptions::new([1, 1], c.3, [1, 1], c.4),
        );
        let probe: Tensor<4> = Tensor::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let grads = (y.clone() * probe.clone()).sum().backward();
        let (xv, wv, pv) = (values(x), values(w), values(probe));

        let ours = direct::forward(&g, &xv, &wv);
        assert_close(&format!("case {i} forward"), &ours, &values(y), 1e-5);
        let dx = direct::backward_data(&g, &pv, &wv);
        let want = values(xg.grad(&grads).unwrap());
        assert_close(&format!("case {i} dL/dx"), &dx, &want, 1e-5);
        let dw = direct::backward_weight(&g, &xv, &pv);
        let want = values(wg.grad(&grads).unwrap());
        assert_close(&format!("case {i} dL/dw"), &dw, &want, 1e-5);
    }
}

#[test]
fn direct_matches_gemm_with_uneven_padding() {
    if skip() {
        return;
    }
    // TensorFlow-style "same" padding of an even kernel, and one-sided padding.
    let cases: [(Case, [(usize, usize); 2]); 3] = [
        (([2, 5, 7, 6], 6, [2, 2], [0, 0], 1), [(0, 1), (0, 1)]),
        (([3, 4, 6, 9], 9, [3, 3], [0, 0], 1), [(2, 0), (0, 2)]),
        (([2, 6, 5, 5], 6, [4, 2], [0, 0], 3), [(1, 2), (1, 0)]),
    ];
    let device = Device::flex();
    device.seed(11);
    for (i, (c, padding)) in cases.iter().enumerate() {
        let g = geometry(c, *padding);
        assert!(
            direct::supports(&g),
            "case {i} should take the direct kernels"
        );
        let random = |n: usize| {
            values(Tensor::<1>::random(
                [n],
                Distribution::Normal(0.0, 1.0),
                &device,
            ))
        };
        let (x, w, dy) = (
            random(g.input_len()),
            random(g.weight_len()),
            random(g.output_len()),
        );
        let pairs = [
            (
                "forward",
                direct::forward(&g, &x, &w),
                im2col::forward(&g, &x, &w),
            ),
            (
                "dL/dx",
                direct::backward_data(&g, &dy, &w),
                im2col::backward_data(&g, &dy, &w),
            ),
            (
                "dL/dw",
                direct::backward_weight(&g, &x, &dy),
                im2col::backward_weight(&g, &x, &dy),
            ),
        ];
        for (what, ours, gemm) in pairs {
            assert_close(&format!("uneven case {i} {what}"), &ours, &gemm, 1e-5);
        }
    }
}

#[test]
fn direct_declines_what_it_cannot_compute() {
    let base = geometry(&CASES[0], [(1, 1); 2]);
    let declined = [
        ConvGeometry {
            stride: [5, 5],
            ..base
        },
        ConvGeometry {
            dilation: [2, 2],
            padding: [(2, 2); 2],
            ..base
        },
        ConvGeometry {
            kernel: [1, 1],
            padding: [(0, 0); 2],
            ..base
        },
        // Padding as large as the kernel has no complementary padding for backward-data.
        ConvGeometry {
            padding: [(3, 3); 2],
            ..base
        },
        // Inconsistent groups; an empty input (a valid convolution of the padding alone).
        ConvGeometry { groups: 3, ..base },
        ConvGeometry {
            in_size: [0, 4],
            ..base
        },
    ];
    for g in declined {
        assert!(!direct::supports(&g), "{g:?} must go to the GEMM path");
        assert!(!direct::applies(&g) && !direct::applies_to_weight_gradient(&g));
        assert!(!direct::supports_input_gradient(&g) && !direct::applies_to_input_gradient(&g));
    }
    // A strided convolution's input gradient is a transposed convolution: GEMM path only.
    let strided = ConvGeometry {
        stride: [2, 2],
        ..base
    };
    assert!(direct::supports(&strided) && !direct::supports_input_gradient(&strided));
    assert!(!direct::applies_to_input_gradient(&strided));
}

/// `[N, C, H, W]`, output channels, kernel, stride, padding (before, after per axis).
type StridedCase = (
    [usize; 4],
    usize,
    [usize; 2],
    [usize; 2],
    [(usize, usize); 2],
);

#[test]
fn strided_direct_matches_burn_and_gemm() {
    if skip() {
        return;
    }
    let cases: &[StridedCase] = &[
        // ResNet's downsampling 3x3 on an even and an odd map.
        ([3, 16, 8, 8], 32, [3, 3], [2, 2], [(1, 1), (1, 1)]),
        ([2, 5, 9, 7], 6, [3, 3], [2, 2], [(1, 1), (1, 1)]),
        // The 7x7 stride-2 stem over 3 channels; an unpadded 3x3; stride 2 along one axis.
        ([2, 3, 13, 11], 8, [7, 7], [2, 2], [(3, 3), (3, 3)]),
        ([2, 4, 9, 10], 5, [3, 3], [2, 2], [(0, 0), (0, 0)]),
        ([2, 4, 7, 9], 4, [3, 3], [2, 1], [(1, 1), (1, 1)]),
        // Stride 3 with a 5x5 (more phases than kernel rows per phase); a 2x2 stride-2 patch.
        ([2, 3, 11, 11], 4, [5, 5], [3, 3], [(2, 2), (2, 2)]),
        ([2, 6, 8, 6], 7, [2, 2], [2, 2], [(0, 0), (0, 0)]),
        // Uneven padding (Burn has none: against the GEMM path only).
        ([2, 5, 8, 9], 6, [3, 3], [2, 2], [(0, 1), (1, 0)]),
        // Several images per weight-gradient pass.
        ([13, 32, 8, 8], 64, [3, 3], [2, 2], [(1, 1), (1, 1)]),
    ];
    let device = Device::flex().autodiff();
    device.seed(17);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for (i, &(shape, cout, kernel, stride, padding)) in cases.iter().enumerate() {
        let g = ConvGeometry {
            batch: shape[0],
            in_channels: shape[1],
            in_size: [shape[2], shape[3]],
            out_channels: cout,
            kernel,
            stride,
            padding,
            dilation: [1, 1],
            groups: 1,
        };
        assert!(direct::supports(&g), "strided case {i} should be supported");
        let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(
            [cout, shape[1], kernel[0], kernel[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let out_size = g.out_size().unwrap();
        let out_shape = [shape[0], cout, out_size[0], out_size[1]];
        let probe: Tensor<4> = Tensor::random(out_shape, Distribution::Normal(0.0, 1.0), &device);
        let (xv, wv, pv) = (values(x.clone()), values(w.clone()), values(probe.clone()));
        let ours = direct::forward(&g, &xv, &wv);
        let dw = direct::backward_weight(&g, &xv, &pv);
        // Batch 1 in a 4-worker pool: the output-channel blocks are shared out instead.
        let first = pool.install(|| {
            let g1 = ConvGeometry { batch: 1, ..g };
            direct::forward(&g1, &xv[..g1.input_len()], &wv)
        });
        assert_close(
            &format!("strided case {i} batch-1 forward"),
            &first,
            &ours[..first.len()],
            1e-5,
        );
        let (want_y, want_dw) = if padding[0].0 == padding[0].1 && padding[1].0 == padding[1].1 {
            let (xg, wg) = (x.require_grad(), w.require_grad());
            let options = ConvOptions::new(stride, [padding[0].0, padding[1].0], [1, 1], 1);
            let y = reference_conv2d(xg, wg.clone(), None, options);
            let grads = (y.clone() * probe).sum().backward();
            (values(y), values(wg.grad(&grads).unwrap()))
        } else {
            (
                im2col::forward(&g, &xv, &wv),
                im2col::backward_weight(&g, &xv, &pv),
            )
        };
        assert_close(&format!("strided case {i} forward"), &ours, &want_y, 1e-5);
        assert_close(&format!("strided case {i} dL/dw"), &dw, &want_dw, 1e-5);
    }
}

#[test]
fn fewer_images_than_workers_share_out_channel_blocks() {
    if skip() {
        return;
    }
    // Batch-1 inference spreads the groups and blocks of output channels over the pool
    // instead of images: a 4-worker pool makes batches 1 and 3 take that path on any machine.
    let device = Device::flex();
    device.seed(13);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let cases: [Case; 3] = [
        ([1, 16, 9, 7], 18, [3, 3], [1, 1], 1),
        ([3, 8, 5, 5], 12, [3, 3], [1, 1], 4),
        ([1, 6, 6, 6], 6, [5, 5], [2, 2], 3),
    ];
    for (i, c) in cases.iter().enumerate() {
        let g = geometry(c, [(c.3[0], c.3[0]), (c.3[1], c.3[1])]);
        let x: Tensor<4> = Tensor::random(c.0, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(
            [c.1, c.0[1] / c.4, c.2[0], c.2[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let want = reference_conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], c.3, [1, 1], c.4),
        );
        let (xv, wv) = (values(x), values(w));
        let ours = pool.install(|| direct::forward(&g, &xv, &wv));
        assert_close(&format!("case {i} forward"), &ours, &values(want), 1e-5);
    }
}
