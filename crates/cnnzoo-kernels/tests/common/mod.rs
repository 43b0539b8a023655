//! Helpers shared by the kernel tests.

use burn::tensor::module::conv2d as reference_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

/// A tensor's elements as `f32`.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Fails unless every element of `got` is within `tol` (relative to the largest |want|, at
/// least 1) of `want`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: max difference {worst} (scale {scale})"
    );
}

/// A pool of `workers` threads, to run a kernel under every way of cutting its work.
// Each test file compiles this module on its own, and not every file uses every helper.
#[allow(dead_code)]
pub fn pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("thread pool")
}

/// Deterministic values in [-1, 1).
#[allow(dead_code)]
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Burn's reference convolution of random normal operands and its input gradient for a random
/// output gradient, all as `f32` values.
#[allow(dead_code)]
pub struct Reference {
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub dy: Vec<f32>,
    pub y: Vec<f32>,
    pub dx: Vec<f32>,
}

/// [`Reference`] for input shape `x`, weight shape `w` and `options`, drawn from `device`
/// (an autodiff device, seeded by the caller).
#[allow(dead_code)]
pub fn burn_reference(
    device: &Device,
    x: [usize; 4],
    w: [usize; 4],
    options: ConvOptions<2>,
) -> Reference {
    let x: Tensor<4> = Tensor::random(x, Distribution::Normal(0.0, 1.0), device);
    let w: Tensor<4> = Tensor::random(w, Distribution::Normal(0.0, 1.0), device);
    let xg = x.clone().require_grad();
    let y = reference_conv2d(xg.clone(), w.clone(), None, options);
    let dy: Tensor<4> = Tensor::random(y.shape(), Distribution::Normal(0.0, 1.0), device);
    let grads = (y.clone() * dy.clone()).sum().backward();
    let dx = values(xg.grad(&grads).expect("input gradient"));
    Reference {
        x: values(x),
        w: values(w),
        dy: values(dy),
        y: values(y),
        dx,
    }
}

/// Runs `run` (two results) in pools of 1, 2 and 4 workers, so that every way of cutting the
/// work runs, and checks both results against `want` within `tol`.
#[allow(dead_code)]
pub fn check_in_pools(
    what: &str,
    [name_a, name_b]: [&str; 2],
    want: (&[f32], &[f32]),
    tol: f32,
    run: impl Fn() -> (Vec<f32>, Vec<f32>) + Send + Sync,
) {
    for workers in [1, 2, 4] {
        let (a, b) = pool(workers).install(&run);
        assert_close(
            &format!("{what}, {workers} workers: {name_a}"),
            &a,
            want.0,
            tol,
        );
        assert_close(
            &format!("{what}, {workers} workers: {name_b}"),
            &b,
            want.1,
            tol,
        );
    }
}

/// The message a call panics with (`None` when it does not panic).
#[allow(dead_code)]
pub fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<String> {
    let payload = std::panic::catch_unwind(f).err()?;
    payload.downcast_ref::<String>().cloned().or_else(|| {
        payload
            .downcast_ref::<&str>()
            .map(std::string::ToString::to_string)
    })
}
