//! Max pooling against Burn's `max_pool2d`: the kernel itself in pools of 1, 2 and 4 workers,
//! the dispatch through `cnnzoo_kernels::max_pool2d`, NaN and infinities, and the geometries
//! the kernel declines.

mod common;
use common::{panic_message, pool, pseudo_random, values};

use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use cnnzoo_kernels::pool::{PoolGeometry, max_pool2d};

/// `(input shape, kernel, stride, padding, ceil mode)`.
type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 2], bool);

const CASES: [Case; 10] = [
    // ResNet's stem pooling on an odd and an even map.
    ([2, 3, 9, 11], [3, 3], [2, 2], [1, 1], false),
    ([2, 5, 16, 16], [3, 3], [2, 2], [1, 1], false),
    ([2, 3, 9, 11], [3, 3], [2, 2], [1, 1], true),
    ([1, 2, 8, 8], [2, 2], [2, 2], [0, 0], false),
    ([2, 4, 7, 5], [3, 3], [1, 1], [1, 1], false),
    // Rectangular windows and strides.
    ([1, 3, 10, 7], [3, 2], [2, 1], [1, 1], false),
    ([1, 1, 1, 1], [1, 1], [1, 1], [0, 0], false),
    // Ceil mode whose last window would start in the end padding: dropped (2x2 output).
    ([1, 2, 5, 5], [3, 3], [3, 3], [1, 1], true),
    // Ceil mode whose last window holds one input column.
    ([1, 2, 5, 5], [2, 2], [2, 2], [0, 0], true),
    // A window as large as the padded map.
    ([3, 2, 3, 4], [5, 6], [1, 1], [1, 2], false),
];

fn options((_, kernel, stride, padding, ceil): Case) -> MaxPoolOptions<2> {
    let mut o = MaxPoolOptions::new(kernel);
    o.stride = stride;
    o.padding = padding.map(|p| (p, p));
    o.ceil_mode = ceil;
    o
}

fn geometry((shape, kernel, stride, padding, ceil_mode): Case) -> PoolGeometry {
    PoolGeometry::nchw(shape, kernel, stride, padding, ceil_mode)
}

/// Burn's max pooling of `x` (shape `shape`) on Flex.
fn burn_max_pool(x: &[f32], shape: [usize; 4], o: MaxPoolOptions<2>) -> (Vec<f32>, [usize; 4]) {
    let t: Tensor<4> = Tensor::from_data(TensorData::new(x.to_vec(), shape), &Device::flex());
    let y = burn::tensor::module::max_pool2d(t, o);
    let dims = y.dims();
    (values(y), dims)
}

/// Bit-for-bit equality (a maximum is one of its inputs), any NaN matching any NaN.
fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}: element {i} is {a}, Burn's {b}"
        );
    }
}

#[test]
fn max_pool_matches_burn() {
    for (i, case) in CASES.into_iter().enumerate() {
        let shape = case.0;
        let x = pseudo_random(shape.iter().product(), 11 + i as u64);
        let (want, dims) = burn_max_pool(&x, shape, options(case));
        let g = geometry(case);
        assert_eq!(
            g.out_size(),
            Some([dims[2], dims[3]]),
            "{case:?}: output size"
        );
        for workers in [1, 2, 4] {
            let got = pool(workers).install(|| max_pool2d(&g, &x));
            assert_same(&format!("{case:?}, {workers} workers"), &got, &want);
        }
    }
}

#[test]
fn dispatch_takes_the_kernel_at_inference_and_burn_under_autodiff() {
    let case = CASES[0];
    let device = Device::flex();
    device.seed(7);
    let x: Tensor<4> = Tensor::random(case.0, Distribution::Normal(0.0, 1.0), &device);
    let xs = values(x.clone());
    let got = values(cnnzoo_kernels::max_pool2d(x, options(case)));
    assert_same("inference", &got, &max_pool2d(&geometry(case), &xs));

    // Under autodiff the gradient reaches each window's maximum, as Burn's does.
    let device = Device::flex().autodiff();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(xs.clone(), case.0), &device);
    let xg = x.require_grad();
    let y = cnnzoo_kernels::max_pool2d(xg.clone(), options(case));
    assert_same("training forward", &values(y.clone()), &got);
    let grads = y.sum().backward();
    let dx = values(xg.grad(&grads).expect("input gradient"));
    let hits = dx.iter().filter(|&&d| d != 0.0).count();
    assert!(hits > 0 && dx.iter().all(|&d| d >= 0.0 && d.fract() == 0.0));
    assert_eq!(
        dx.iter().sum::<f32>() as usize,
        got.len(),
        "one unit per output"
    );

    // Asymmetric padding and dilation are Burn's too.
    let device = Device::flex();
    let x = || Tensor::<4>::from_data(TensorData::new(xs.clone(), case.0), &device);
    for o in [
        MaxPoolOptions::new([3, 3]).with_padding_pairs([(1, 0), (0, 1)]),
        MaxPoolOptions::new([2, 2]).with_dilation([2, 2]),
    ] {
        let got = values(cnnzoo_kernels::max_pool2d(x(), o.clone()));
        let want = values(burn::tensor::module::max_pool2d(x(), o.clone()));
        assert_same(&format!("{o:?}"), &got, &want);
    }
}

#[test]
fn nan_wins_its_windows_and_infinities_pass_through() {
    let case: Case = ([1, 1, 6, 6], [3, 3], [2, 2], [1, 1], false);
    let mut x = pseudo_random(36, 3);
    x[7] = f32::NAN; // row 1, column 1: in windows (0, 0) and (0, 1), (1, 0), (1, 1)
    x[35] = f32::INFINITY; // the last element: window (2, 2) only
    for v in &mut x[12..18] {
        *v = f32::NEG_INFINITY; // row 2
    }
    let (want, _) = burn_max_pool(&x, case.0, options(case));
    let got = max_pool2d(&geometry(case), &x);
    assert_same("NaN and infinities", &got, &want);
    let nans: Vec<usize> = (0..got.len()).filter(|&i| got[i].is_nan()).collect();
    assert_eq!(nans, [0, 1, 3, 4], "windows holding the NaN");
    assert_eq!(got[8], f32::INFINITY);

    // A window of nothing but -inf gives -inf.
    let x = vec![f32::NEG_INFINITY; 16];
    let g = geometry(([1, 1, 4, 4], [2, 2], [2, 2], [0, 0], false));
    assert!(max_pool2d(&g, &x).iter().all(|&v| v == f32::NEG_INFINITY));
}

#[test]
fn unsupported_geometries_are_declined_with_a_reason() {
    let base = geometry(CASES[0]);
    for (what, g) in [
        (
            "padding over half the window",
            PoolGeometry {
                padding: [2, 1],
                ..base
            },
        ),
        (
            "empty window",
            PoolGeometry {
                kernel: [0, 3],
                ..base
            },
        ),
        (
            "zero stride",
            PoolGeometry {
                stride: [2, 0],
                ..base
            },
        ),
        (
            "window wider than the padded map",
            PoolGeometry {
                kernel: [3, 14],
                padding: [1, 0],
                ..base
            },
        ),
    ] {
        assert!(!g.supported() && g.out_size().is_none(), "{what}");
        let x = vec![0.0; g.input_len()];
        let msg = panic_message(|| {
            max_pool2d(&g, &x);
        });
        assert!(
            msg.as_deref()
                .is_some_and(|m| m.contains("does not support")),
            "{what}: {msg:?}"
        );
    }
    let msg = panic_message(|| {
        max_pool2d(&base, &[0.0; 5]);
    });
    assert!(msg.is_some_and(|m| m.contains("input length")));
}
