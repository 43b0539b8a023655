//! The fused ends of a residual block, `relu(a + b)` and `relu(a * gates + b)`, and option A's
//! zero-pad shortcut, against the same expressions in Burn's operations: outputs and the
//! gradients of every operand.

mod common;
use common::{assert_close, panic_message, values};

use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor, s};
use cnnzoo_kernels::{add_relu, scale_add_relu, uses_kernels, zero_pad_shortcut};

const SHAPES: [[usize; 4]; 3] = [[2, 3, 4, 5], [3, 16, 8, 8], [1, 2, 1, 1]];

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn add_relu_matches_burn() {
    let device = Device::flex().autodiff();
    assert!(uses_kernels(&device));
    device.seed(3);
    for shape in SHAPES {
        let (a, b) = (random(shape, &device), random(shape, &device));
        let probe = random(shape, &device);
        let mut outs = Vec::new();
        for ours in [true, false] {
            let (a, b) = (a.clone().require_grad(), b.clone().require_grad());
            let y = if ours {
                add_relu(a.clone(), b.clone())
            } else {
                relu(a.clone() + b.clone())
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push([
                values(y),
                values(a.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            ]);
        }
        for (i, what) in ["output", "dL/da", "dL/db"].iter().enumerate() {
            assert_close(&format!("{shape:?} {what}"), &outs[0][i], &outs[1][i], 1e-6);
        }
        // Both operands see the masked gradient: zero exactly where the output is zero.
        let (y, da) = (&outs[0][0], &outs[0][1]);
        assert!(y.iter().zip(da).all(|(y, d)| *y > 0.0 || *d == 0.0));
        if y.len() > 16 {
            assert!(y.contains(&0.0), "{shape:?}: the ReLU never clipped");
        }
    }
}

#[test]
fn scale_add_relu_matches_burn() {
    let device = Device::flex().autodiff();
    device.seed(5);
    for shape in SHAPES {
        let [n, c, _, _] = shape;
        let (a, b) = (random(shape, &device), random(shape, &device));
        let gates: Tensor<4> = Tensor::random([n, c, 1, 1], Distribution::Default, &device);
        let probe = random(shape, &device);
        let mut outs = Vec::new();
        for ours in [true, false] {
            let (a, g, b) = (
                a.clone().require_grad(),
                gates.clone().require_grad(),
                b.clone().require_grad(),
            );
            let y = if ours {
                scale_add_relu(a.clone(), g.clone(), b.clone())
            } else {
                relu(a.clone() * g.clone() + b.clone())
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push([
                values(y),
                values(a.grad(&grads).unwrap()),
                values(g.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            ]);
        }
        for (i, what) in ["output", "dL/da", "dL/dgates", "dL/db"].iter().enumerate() {
            assert_close(&format!("{shape:?} {what}"), &outs[0][i], &outs[1][i], 1e-5);
        }
    }
}

#[test]
fn mismatched_shapes_fall_back_to_burns_broadcasting() {
    let device = Device::flex();
    device.seed(9);
    // A per-channel shortcut broadcasts in Burn; the fused kernel must not read past it.
    let a = random([2, 3, 4, 4], &device);
    let b = random([1, 3, 1, 1], &device);
    let want = values(relu(a.clone() + b.clone()));
    assert_close("broadcast", &values(add_relu(a, b)), &want, 1e-6);
}

/// Option A in Burn's operations: a strided slice, then zero channels.
fn burn_zero_pad(x: Tensor<4>, stride: usize, extra: usize) -> Tensor<4> {
    let st = stride as isize;
    let x = x.slice(s![.., .., ..;st, ..;st]);
    let [n, _, h, w] = x.dims();
    Tensor::cat(
        vec![x.clone(), Tensor::zeros([n, extra, h, w], &x.device())],
        1,
    )
}

#[test]
fn zero_pad_shortcut_matches_burn() {
    let device = Device::flex().autodiff();
    device.seed(13);
    // (input shape, stride, extra channels): the CIFAR ResNets' downsampling, odd sizes whose
    // last row and column are kept, stride 3, no subsampling, no extra channels.
    let cases = [
        ([3, 16, 8, 8], 2, 16),
        ([2, 3, 5, 7], 2, 3),
        ([1, 4, 7, 6], 3, 2),
        ([2, 2, 4, 4], 1, 2),
        ([2, 5, 6, 6], 2, 0),
    ];
    for (shape, stride, extra) in cases {
        let x = random(shape, &device);
        let [n, c, h, w] = shape;
        let out = [n, c + extra, h.div_ceil(stride), w.div_ceil(stride)];
        let probe = random(out, &device);
        let mut outs = Vec::new();
        for ours in [true, false] {
            let x = x.clone().require_grad();
            let y = if ours {
                zero_pad_shortcut(x.clone(), stride, extra)
            } else {
                burn_zero_pad(x.clone(), stride, extra)
            };
            assert_eq!(y.dims(), out, "{shape:?} stride {stride}: output shape");
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push([values(y), values(x.grad(&grads).unwrap())]);
        }
        let what = format!("{shape:?} stride {stride} extra {extra}");
        assert_close(&format!("{what} output"), &outs[0][0], &outs[1][0], 0.0);
        assert_close(&format!("{what} dL/dx"), &outs[0][1], &outs[1][1], 0.0);
        // The appended channels are zero and the skipped positions get no gradient.
        let plane = out[2] * out[3];
        let padded = outs[0][0]
            .chunks(plane)
            .enumerate()
            .filter(|(i, _)| i % (c + extra) >= c);
        assert!(padded.flat_map(|(_, p)| p).all(|v| *v == 0.0), "{what}");
        if stride > 1 {
            assert!(
                outs[0][1].contains(&0.0),
                "{what}: every input position got a gradient"
            );
        }
    }
    // Without autodiff (inference) the same forward pass.
    let x = random([2, 3, 5, 5], &Device::flex());
    let want = values(burn_zero_pad(x.clone(), 2, 1));
    assert_close(
        "inference",
        &values(zero_pad_shortcut(x.clone(), 2, 1)),
        &want,
        0.0,
    );
    // A zero stride is refused with a message, not passed through as the input.
    let refused = panic_message(std::panic::AssertUnwindSafe(|| {
        drop(zero_pad_shortcut(x, 0, 1));
    }));
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("stride must be positive")),
        "{refused:?}"
    );
}
