//! cnnzoo's convolution against Burn's reference `conv2d` (forward and both gradients) and
//! against finite differences.

mod common;
use common::{assert_close, values};

use burn::tensor::activation::relu;
use burn::tensor::module::conv2d as reference_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use cnnzoo_kernels::{conv2d, conv2d_add_relu, conv2d_relu, uses_kernels};

/// One case: input `[N, C, H, W]`, output channels, kernel, stride, padding, dilation, groups.
struct Case {
    x: [usize; 4],
    out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

const CASES: &[Case] = &[
    // ResNet basic block 3x3.
    Case {
        x: [2, 4, 8, 8],
        out: 4,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    },
    // Downsampling 3x3, stride 2, odd input size.
    Case {
        x: [3, 3, 9, 7],
        out: 5,
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    },
    // Bottleneck 1x1 (the no-im2col path) and option-B 1x1 stride-2 projection.
    Case {
        x: [2, 6, 5, 5],
        out: 8,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [2, 6, 7, 6],
        out: 8,
        kernel: [1, 1],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    },
    // SE excitation FCs: 1x1 on 1x1 maps, one matrix product over the batch.
    Case {
        x: [5, 12, 1, 1],
        out: 3,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    },
    // ResNeXt grouped 3x3 and a depthwise-like case.
    Case {
        x: [2, 8, 6, 6],
        out: 8,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 4,
    },
    Case {
        x: [1, 6, 7, 7],
        out: 12,
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 6,
    },
    // Stem 7x7 stride 2 pad 3, non-square kernel, asymmetric stride, dilation, no padding.
    Case {
        x: [1, 3, 13, 11],
        out: 4,
        kernel: [7, 7],
        stride: [2, 2],
        padding: [3, 3],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [2, 3, 8, 9],
        out: 2,
        kernel: [1, 3],
        stride: [1, 2],
        padding: [0, 1],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [1, 2, 9, 9],
        out: 3,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [2, 2],
        dilation: [2, 2],
        groups: 1,
    },
    Case {
        x: [1, 2, 5, 6],
        out: 3,
        kernel: [5, 3],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    },
];

fn options(c: &Case) -> ConvOptions<2> {
    ConvOptions::new(c.stride, c.padding, c.dilation, c.groups)
}

#[test]
fn forward_and_gradients_match_burn() {
    let device = Device::flex().autodiff();
    for (i, c) in CASES.iter().enumerate() {
        let w_shape = [c.out, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
        let x: Tensor<4> = Tensor::random(c.x, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
        let b: Tensor<1> = Tensor::random([c.out], Distribution::Normal(0.0, 1.0), &device);
        let mut results = Vec::new();
        for ours in [true, false] {
            let (xg, wg, bg) = (
                x.clone().detach().require_grad(),
                w.clone().detach().require_grad(),
                b.clone().detach().require_grad(),
            );
            let y = if ours {
                conv2d(xg.clone(), wg.clone(), Some(bg.clone()), options(c))
            } else {
                reference_conv2d(xg.clone(), wg.clone(), Some(bg.clone()), options(c))
            };
            results.push((y, xg, wg, bg));
        }
        // A loss whose gradient differs per output element, so a transposed or shifted
        // gradient cannot pass.
        let probe: Tensor<4> =
            Tensor::random(results[0].0.dims(), Distribution::Normal(0.0, 1.0), &device).detach();
        let mut outs = Vec::new();
        for (y, xg, wg, bg) in results {
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push((
                values(y),
                values(xg.grad(&grads).unwrap()),
                values(wg.grad(&grads).unwrap()),
                values(bg.grad(&grads).unwrap()),
            ));
        }
        let (ours, reference) = (&outs[0], &outs[1]);
        assert_close(&format!("case {i} forward"), &ours.0, &reference.0, 1e-5);
        assert_close(&format!("case {i} dL/dx"), &ours.1, &reference.1, 1e-5);
        assert_close(&format!("case {i} dL/dw"), &ours.2, &reference.2, 1e-5);
        assert_close(&format!("case {i} dL/db"), &ours.3, &reference.3, 1e-5);
    }
}

#[test]
fn gradients_match_finite_differences() {
    // Central differences in f32 on a small grouped, strided, padded case.
    let device = Device::flex().autodiff();
    // Fixed draws: the checked points never depend on the run.
    device.seed(11);
    let c = Case {
        x: [2, 4, 5, 6],
        out: 4,
        kernel: [3, 3],
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 2,
    };
    let w_shape = [c.out, c.x[1] / c.groups, 3, 3];
    let x: Tensor<4> = Tensor::random(c.x, Distribution::Normal(0.0, 1.0), &device);
    let w: Tensor<4> = Tensor::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
    let y_dims = conv2d(x.clone(), w.clone(), None, options(&c)).dims();
    let probe: Tensor<4> = Tensor::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
    let loss = |x: Tensor<4>, w: Tensor<4>| -> Tensor<1> {
        (conv2d(x, w, None, options(&c)) * probe.clone()).sum()
    };
    let (xg, wg) = (x.clone().require_grad(), w.clone().require_grad());
    let grads = loss(xg.clone(), wg.clone()).backward();
    let (dx, dw) = (
        values(xg.grad(&grads).unwrap()),
        values(wg.grad(&grads).unwrap()),
    );

    let h = 1e-2f32;
    let numeric = |t: &Tensor<4>, which: usize, at: usize| -> f32 {
        let mut v = values(t.clone());
        let shape = t.dims();
        let eval = |v: &[f32]| {
            let p = Tensor::<4>::from_data(TensorData::new(v.to_vec(), shape), &device);
            let l = if which == 0 {
                loss(p, w.clone())
            } else {
                loss(x.clone(), p)
            };
            values(l)[0]
        };
        v[at] += h;
        let up = eval(&v);
        v[at] -= 2.0 * h;
        let down = eval(&v);
        (up - down) / (2.0 * h)
    };
    // Every weight element and a spread of input elements (borders included).
    for (at, analytic) in dw.iter().enumerate() {
        let n = numeric(&w, 1, at);
        assert!(
            (n - analytic).abs() <= 2e-2 * (1.0 + n.abs()),
            "dL/dw[{at}]: numeric {n}, analytic {analytic}"
        );
    }
    for at in (0..dx.len()).step_by(7) {
        let n = numeric(&x, 0, at);
        assert!(
            (n - dx[at]).abs() <= 2e-2 * (1.0 + n.abs()),
            "dL/dx[{at}]: numeric {n}, analytic {}",
            dx[at]
        );
    }
}

#[test]
fn without_autodiff_matches_burn() {
    let device = Device::flex();
    let c = &CASES[5];
    let x: Tensor<4> = Tensor::random(c.x, Distribution::Normal(0.0, 1.0), &device);
    let w: Tensor<4> = Tensor::random(
        [c.out, c.x[1] / c.groups, 3, 3],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let ours = values(conv2d(x.clone(), w.clone(), None, options(c)));
    let reference = values(reference_conv2d(x.clone(), w.clone(), None, options(c)));
    assert_close("inference forward", &ours, &reference, 1e-5);
}

#[test]
fn inference_bias_matches_burn() {
    inference_bias_cases();
}

#[test]
fn inference_bias_with_fewer_images_than_workers() {
    // A 4-worker pool puts every case's batch below the worker count: the GEMM path threads
    // each GEMM and applies the bias in its own pass, the direct path shares out channels.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(inference_bias_cases);
}

fn inference_bias_cases() {
    // Without autodiff the bias (and the residual, and the ReLU) are applied as the conv op
    // writes its output:
    // every case, so each kernel path (direct, im2col + GEMM, pointwise, matrix product) gets
    // them.
    let device = Device::flex();
    device.seed(21);
    for (i, c) in CASES.iter().enumerate() {
        let w_shape = [c.out, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
        let x: Tensor<4> = Tensor::random(c.x, Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
        let b: Tensor<1> = Tensor::random([c.out], Distribution::Normal(0.0, 1.0), &device);
        let ours = values(conv2d(x.clone(), w.clone(), Some(b.clone()), options(c)));
        let reference = reference_conv2d(x.clone(), w.clone(), Some(b.clone()), options(c));
        assert_close(
            &format!("case {i} with bias"),
            &ours,
            &values(reference.clone()),
            1e-5,
        );
        let residual: Tensor<4> =
            Tensor::random(reference.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours = values(conv2d_add_relu(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            residual.clone(),
            options(c),
        ));
        assert_close(
            &format!("case {i} with bias + residual + ReLU"),
            &ours,
            &values(relu(reference.clone() + residual)),
            1e-5,
        );
        let ours = values(conv2d_relu(x, w, Some(b), options(c)));
        let reference = values(relu(reference));
        assert_close(
            &format!("case {i} with bias + ReLU"),
            &ours,
            &reference,
            1e-5,
        );
        assert!(ours.contains(&0.0), "case {i}: the ReLU never clipped");
    }
}

#[test]
fn transposed_input_is_read_correctly() {
    // A non-contiguous input (a swapped view) must give the same result as its contiguous copy.
    let device = Device::flex();
    let x: Tensor<4> = Tensor::random([2, 3, 6, 5], Distribution::Normal(0.0, 1.0), &device);
    let w: Tensor<4> = Tensor::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let permuted = x.clone().permute([0, 1, 3, 2]);
    assert_close(
        "permuted",
        &values(conv2d(permuted.clone(), w.clone(), None, opts.clone())),
        &values(reference_conv2d(permuted, w.clone(), None, opts.clone())),
        1e-5,
    );
}

#[test]
fn training_convolutions_run_the_kernels_not_the_inference_defaults() {
    // `Device`'s equality ignores autodiff: a check for "inference" written as
    // `device == Device::flex()` once sent training's convolutions to the inference-only
    // operations, whose autodiff versions are Burn's conv2d (right, but three times slower).
    // Under autodiff the forward pass must be cnnzoo's own kernel, bit for bit.
    let device = Device::flex().autodiff();
    device.seed(31);
    let g = cnnzoo_kernels::ConvGeometry {
        padding: [(1, 1); 2],
        ..cnnzoo_kernels::ConvGeometry::new([3, 32, 16, 16], 32, [3, 3])
    };
    let opts = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let x: Tensor<4> = Tensor::random([3, 32, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let w: Tensor<4> = Tensor::random([32, 32, 3, 3], Distribution::Normal(0.0, 0.2), &device);
    let b: Tensor<1> = Tensor::random([32], Distribution::Normal(0.0, 1.0), &device);
    let (xs, ws, bs) = (values(x.clone()), values(w.clone()), values(b.clone()));
    let kernel = cnnzoo_kernels::conv::conv2d_forward(&g, &xs, &ws);
    let burn = values(reference_conv2d(x.clone(), w.clone(), None, opts()));
    assert_ne!(
        kernel, burn,
        "the kernel's rounding should tell it from Burn's here"
    );
    // Bit for bit; on failure, how many differ rather than every value.
    let same = |what: &str, got: &[f32], want: &[f32]| {
        let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
        assert!(
            got.len() == want.len() && differ == 0,
            "{what}: {differ} of {} values differ from the kernel's",
            want.len()
        );
    };
    let plain = values(conv2d(x.clone().require_grad(), w.clone(), None, opts()));
    same("no bias", &plain, &kernel);
    let plane = 16 * 16;
    let with_bias: Vec<f32> = (kernel.iter().enumerate())
        .map(|(i, v)| v + bs[i / plane % 32])
        .collect();
    let biased = values(conv2d(x.clone(), w.clone(), Some(b.clone()), opts()));
    same("with a bias", &biased, &with_bias);
    let relu_ed = values(conv2d_relu(x, w, Some(b), opts()));
    let want: Vec<f32> = with_bias.iter().map(|v| v.max(0.0)).collect();
    same("with a bias and ReLU", &relu_ed, &want);
}

#[test]
fn flex_devices_take_the_kernels() {
    // Without this, every comparison above could silently compare Burn with itself.
    assert!(uses_kernels(&Device::flex()));
    assert!(uses_kernels(&Device::flex().autodiff()));
}

#[test]
fn mismatched_weight_gets_burns_own_error() {
    // A weight whose input channels do not match x must not reach the kernels (which would
    // read it with the wrong layout): it goes to Burn's conv2d and fails as Burn fails.
    let device = Device::flex();
    let x: Tensor<4> = Tensor::random([1, 4, 5, 5], Distribution::Default, &device);
    let w: Tensor<4> = Tensor::random([2, 3, 3, 3], Distribution::Default, &device);
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let message = |f: Box<dyn FnOnce() + std::panic::UnwindSafe>| {
        let err = std::panic::catch_unwind(f).expect_err("a mismatched weight must fail");
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                err.downcast_ref::<&str>()
                    .map(std::string::ToString::to_string)
            })
            .unwrap_or_default()
    };
    let (x2, w2, o2) = (x.clone(), w.clone(), opts.clone());
    let ours = message(Box::new(move || drop(conv2d(x2, w2, None, o2))));
    let burns = message(Box::new(move || drop(reference_conv2d(x, w, None, opts))));
    assert_eq!(ours, burns);
    assert!(!burns.is_empty());
}
