//! cnnzoo's BatchNorm against Burn's `batch_norm_train` / `batch_norm` (outputs, statistics
//! and all three gradients) and against finite differences.

use burn::tensor::module::{batch_norm as reference_eval, batch_norm_train as reference_train};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use cnnzoo_kernels::{batch_norm, batch_norm_train};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
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

#[test]
fn training_forward_and_gradients_match_burn() {
    let device = Device::flex().autodiff();
    // Rank 4 with an odd plane (not a multiple of the eight summation lanes) and rank 2.
    for shape in [vec![3, 5, 7, 3], vec![16, 9]] {
        let x = Tensor::<2>::random(
            [shape.iter().product::<usize>(), 1],
            Distribution::Normal(3.0, 2.0),
            &device,
        );
        let x: Tensor<4> = if shape.len() == 4 {
            x.reshape([shape[0], shape[1], shape[2], shape[3]])
        } else {
            x.reshape([shape[0], shape[1], 1, 1])
        };
        let c = shape[1];
        let gamma: Tensor<1> = Tensor::random([c], Distribution::Normal(1.0, 0.5), &device);
        let beta: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.5), &device);
        let probe: Tensor<4> = Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
        let mut runs = Vec::new();
        for ours in [true, false] {
            let (xg, gg, bg) = (
                x.clone().detach().require_grad(),
                gamma.clone().detach().require_grad(),
                beta.clone().detach().require_grad(),
            );
            let (y, mean, var) = if ours {
                batch_norm_train(xg.clone(), gg.clone(), bg.clone(), 1e-5)
            } else {
                let r = reference_train(xg.clone(), gg.clone(), bg.clone(), 1e-5);
                (r.output, r.mean, r.variance)
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            runs.push([
                values(y),
                values(mean),
                values(var),
                values(xg.grad(&grads).unwrap()),
                values(gg.grad(&grads).unwrap()),
                values(bg.grad(&grads).unwrap()),
            ]);
        }
        for (i, what) in [
            "output",
            "mean",
            "variance",
            "dL/dx",
            "dL/dgamma",
            "dL/dbeta",
        ]
        .iter()
        .enumerate()
        {
            assert_close(&format!("{shape:?} {what}"), &runs[0][i], &runs[1][i], 2e-5);
        }
    }
}

#[test]
fn eval_matches_burn() {
    let device = Device::flex();
    let x: Tensor<4> = Tensor::random([2, 4, 3, 5], Distribution::Normal(0.0, 3.0), &device);
    let per_channel =
        |lo: f64, hi: f64| Tensor::<1>::random([4], Distribution::Uniform(lo, hi), &device);
    let (g, b, m, v) = (
        per_channel(0.5, 2.0),
        per_channel(-1.0, 1.0),
        per_channel(-1.0, 1.0),
        per_channel(0.1, 3.0),
    );
    let ours = values(batch_norm(
        x.clone(),
        g.clone(),
        b.clone(),
        m.clone(),
        v.clone(),
        1e-5,
    ));
    let reference = values(reference_eval(x, g, b, m, v, 1e-5));
    assert_close("eval", &ours, &reference, 1e-5);
}

#[test]
fn input_gradient_matches_finite_differences() {
    let device = Device::flex().autodiff();
    let x: Tensor<4> = Tensor::random([2, 3, 2, 3], Distribution::Normal(0.0, 1.0), &device);
    let gamma: Tensor<1> = Tensor::random([3], Distribution::Normal(1.0, 0.5), &device);
    let beta: Tensor<1> = Tensor::random([3], Distribution::Normal(0.0, 0.5), &device);
    let probe: Tensor<4> = Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
    let loss = |x: Tensor<4>| {
        (batch_norm_train(x, gamma.clone(), beta.clone(), 1e-5).0 * probe.clone()).sum()
    };
    let xg = x.clone().require_grad();
    let dx = values(xg.grad(&loss(xg.clone()).backward()).unwrap());
    let base = values(x.clone());
    let h = 1e-2f32;
    for at in 0..base.len() {
        let eval = |delta: f32| {
            let mut v = base.clone();
            v[at] += delta;
            values(loss(Tensor::<4>::from_data(
                TensorData::new(v, x.dims()),
                &device,
            )))[0]
        };
        let numeric = (eval(h) - eval(-h)) / (2.0 * h);
        assert!(
            (numeric - dx[at]).abs() <= 2e-2 * (1.0 + numeric.abs()),
            "dL/dx[{at}]: numeric {numeric}, analytic {}",
            dx[at]
        );
    }
}
