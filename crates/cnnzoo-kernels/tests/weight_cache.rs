//! Inference's kept Winograd weights: a 3x3 convolution on Flex (no autodiff) gives
//! Burn's result on every call, keeps one transform per weight tensor, computes a new one when
//! the weights change (even in place), and lets it go when the weights are dropped.
//!
//! One test function: the cache is shared by the whole process, so its size is only
//! meaningful when nothing else runs convolutions meanwhile.

mod common;
use common::{assert_close, values};

use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_kernels::ConvGeometry;
use cnnzoo_kernels::weight_cache::cached_bytes;
use cnnzoo_kernels::winograd;

#[test]
fn transformed_weights_are_kept_per_tensor_and_never_stale() {
    let device = Device::flex();
    device.seed(21);
    let (n, c, hw) = (1, 32, 16);
    let g = ConvGeometry {
        padding: [(1, 1); 2],
        ..ConvGeometry::new([n, c, hw, hw], c, [3, 3])
    };
    if !winograd::applies_transformed(&g) {
        eprintln!("skipped: this CPU has no AVX2 + FMA, so the Winograd kernels never run here");
        return;
    }
    let bytes = winograd::transformed_len(&g) * 4;
    let options = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let x: Tensor<4> = Tensor::random([n, c, hw, hw], Distribution::Normal(0.0, 1.0), &device);
    let w: Tensor<4> = Tensor::random([c, c, 3, 3], Distribution::Normal(0.0, 0.2), &device);
    let b: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 1.0), &device);
    let check = |what: &str, w: &Tensor<4>| {
        let want = values(burn_conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            options(),
        ));
        let got = values(cnnzoo_kernels::conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            options(),
        ));
        assert_close(what, &got, &want, 2e-5);
    };
    let before = cached_bytes();
    check("first call", &w);
    assert_eq!(cached_bytes(), before + bytes, "one transform kept");
    check("second call", &w);
    let relu = values(cnnzoo_kernels::conv2d_relu(
        x.clone(),
        w.clone(),
        Some(b.clone()),
        options(),
    ));
    assert!(relu.iter().all(|&v| v >= 0.0) && relu.contains(&0.0));
    // Without a bias (a network whose BatchNorm is not folded) too.
    let want = values(burn_conv2d(x.clone(), w.clone(), None, options()));
    let got = values(cnnzoo_kernels::conv2d(
        x.clone(),
        w.clone(),
        None,
        options(),
    ));
    assert_close("no bias", &got, &want, 2e-5);
    assert_eq!(cached_bytes(), before + bytes, "the same weights share it");

    // New values in the same tensor (an operation Flex may do in place when nothing else
    // holds the storage) are transformed anew.
    let w = w.mul_scalar(-1.5);
    check("changed weights", &w);
    assert_eq!(
        cached_bytes(),
        before + bytes,
        "the old transform went with its tensor"
    );

    // A second tensor keeps its own; dropping the tensors lets both go.
    let w2: Tensor<4> = Tensor::random([c, c, 3, 3], Distribution::Normal(0.0, 0.2), &device);
    check("second tensor", &w2);
    assert_eq!(cached_bytes(), before + 2 * bytes);
    drop((w, w2));
    assert_eq!(
        cached_bytes(),
        before,
        "dropped weights release their transforms"
    );
}
