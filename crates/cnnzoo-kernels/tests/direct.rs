//! The direct stride-1 convolution kernels against Burn's reference `conv2d` (forward and both
//! gradients), and against the im2col + GEMM path where Burn has no counterpart (padding that
//! differs before and after). Skipped, with a message, on a CPU without AVX2 and FMA.

mod common;
use common::{assert_close, values};

use burn::tensor::module::conv2d as reference_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_kernels::conv::{self, ConvGeometry};
use cnnzoo_kernels::direct;

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
                conv::gemm_forward(&g, &x, &w),
            ),
            (
                "dL/dx",
                direct::backward_data(&g, &dy, &w),
                conv::gemm_backward_data(&g, &dy, &w),
            ),
            (
                "dL/dw",
                direct::backward_weight(&g, &x, &dy),
                conv::gemm_backward_weight(&g, &x, &dy),
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
            stride: [2, 2],
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
