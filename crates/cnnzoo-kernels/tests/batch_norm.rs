//! cnnzoo's BatchNorm against Burn's `batch_norm_train` / `batch_norm` (outputs, statistics
//! and all three gradients) and against finite differences.

mod common;
use common::{assert_close, values};

use burn::tensor::module::{batch_norm as reference_eval, batch_norm_train as reference_train};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use cnnzoo_kernels::{batch_norm, batch_norm_train};

#[test]
fn training_forward_and_gradients_match_burn() {
    let device = Device::flex().autodiff();
    // Rank 4 with an odd plane (not a multiple of the eight summation lanes) and rank 2.
    for (shape, relu) in [
        (vec![3, 5, 7, 3], false),
        (vec![16, 9], false),
        (vec![3, 5, 7, 3], true),
        (vec![16, 9], true),
    ] {
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
                batch_norm_train(xg.clone(), gg.clone(), bg.clone(), 1e-5, relu)
            } else {
                let r = reference_train(xg.clone(), gg.clone(), bg.clone(), 1e-5);
                let output = if relu {
                    burn::tensor::activation::relu(r.output)
                } else {
                    r.output
                };
                (output, r.mean, r.variance)
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
            assert_close(
                &format!("{shape:?} relu {relu} {what}"),
                &runs[0][i],
                &runs[1][i],
                2e-5,
            );
        }
    }
}

#[test]
fn training_statistics_survive_a_large_mean() {
    // A mean 10^4 times the spread: a one-pass variance without a shift loses every digit
    // here (f32 squares of ~1000 carry ~1e-4 absolute error against a variance of 1e-2).
    let device = Device::flex();
    device.seed(31);
    let x = Tensor::<4>::random([8, 3, 6, 6], Distribution::Normal(0.0, 0.1), &device) + 1000.0;
    let gamma = Tensor::<1>::ones([3], &device);
    let beta = Tensor::<1>::zeros([3], &device);
    let (y, mean, var) = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5, false);
    let r = reference_train(x, gamma, beta, 1e-5);
    assert_close("mean", &values(mean), &values(r.mean), 1e-6);
    for (got, want) in values(var).iter().zip(values(r.variance)) {
        assert!((got - want).abs() < 1e-3 * want, "variance {got} vs {want}");
    }
    assert_close("output", &values(y), &values(r.output), 1e-2);
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
    let ours = batch_norm(
        x.clone(),
        g.clone(),
        b.clone(),
        m.clone(),
        v.clone(),
        1e-5,
        false,
    );
    let reference = reference_eval(x.clone(), g.clone(), b.clone(), m.clone(), v.clone(), 1e-5);
    assert_close("eval", &values(ours), &values(reference.clone()), 1e-5);
    let fused = values(batch_norm(x, g, b, m, v, 1e-5, true));
    let relu = values(burn::tensor::activation::relu(reference));
    assert_close("eval + relu", &fused, &relu, 1e-5);
    assert!(fused.contains(&0.0) && fused.iter().any(|v| *v > 0.0));
}

#[test]
fn input_gradient_matches_finite_differences() {
    for relu in [false, true] {
        finite_differences(relu);
    }
}

fn finite_differences(relu: bool) {
    let device = Device::flex().autodiff();
    // Fixed draws: which inputs sit near a ReLU kink never depends on the run.
    device.seed(11);
    let x: Tensor<4> = Tensor::random([2, 3, 2, 3], Distribution::Normal(0.0, 1.0), &device);
    let gamma: Tensor<1> = Tensor::random([3], Distribution::Normal(1.0, 0.5), &device);
    let beta: Tensor<1> = Tensor::random([3], Distribution::Normal(0.0, 0.5), &device);
    let probe: Tensor<4> = Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
    let loss = |x: Tensor<4>| {
        (batch_norm_train(x, gamma.clone(), beta.clone(), 1e-5, relu).0 * probe.clone()).sum()
    };
    let xg = x.clone().require_grad();
    let dx = values(xg.grad(&loss(xg.clone()).backward()).unwrap());
    let base = values(x.clone());
    let h = 1e-2f32;
    let mut checked = 0;
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
        // Moving one input moves its channel's statistics, so with ReLU some pre-activation
        // can cross zero inside [x - h, x + h]; there the difference quotient is meaningless.
        // A second, smaller step that disagrees with the first shows such a kink.
        let finer = (eval(h / 4.0) - eval(-h / 4.0)) / (h / 2.0);
        if relu && (finer - numeric).abs() > 1e-2 * (1.0 + numeric.abs()) {
            continue;
        }
        checked += 1;
        assert!(
            (numeric - dx[at]).abs() <= 2e-2 * (1.0 + numeric.abs()),
            "relu {relu}: dL/dx[{at}]: numeric {numeric}, analytic {}",
            dx[at]
        );
    }
    assert!(
        checked * 10 >= base.len() * 7,
        "relu {relu}: only {checked} of {} inputs away from a kink",
        base.len()
    );
}

#[test]
fn mismatched_parameters_get_burns_own_error() {
    // gamma / beta of the wrong length must not reach the kernels: Burn's batch_norm_train
    // checks them and names the problem.
    let device = Device::flex().autodiff();
    let x: Tensor<4> = Tensor::random([2, 4, 3, 3], Distribution::Default, &device);
    let wrong: Tensor<1> = Tensor::ones([3], &device);
    let err = std::panic::catch_unwind(|| {
        drop(batch_norm_train(x, wrong.clone(), wrong, 1e-5, true));
    })
    .expect_err("mismatched parameters must fail");
    let message = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            err.downcast_ref::<&str>()
                .map(std::string::ToString::to_string)
        })
        .unwrap_or_default();
    assert!(message.contains("gamma"), "{message}");
}
