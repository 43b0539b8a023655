//! The fused SE block end, `relu(a * sigmoid(fc2(relu(fc1(mean(a))))) + shortcut)`, against
//! the same expression in Burn's operations: the output and the gradients of all six operands.

mod common;
use common::{assert_close, values};

use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use cnnzoo_kernels::{se_scale_add_relu, uses_kernels};

/// `[N, C, H, W]` and the bottleneck width R.
const CASES: [([usize; 4], usize); 3] = [([2, 16, 5, 6], 8), ([3, 64, 4, 4], 4), ([1, 3, 1, 1], 2)];

/// The unfused expression, as the SE unit computes it from Burn's operations.
fn reference(
    a: Tensor<4>,
    w1: Tensor<4>,
    b1: Tensor<1>,
    w2: Tensor<4>,
    b2: Tensor<1>,
    s: Tensor<4>,
) -> Tensor<4> {
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let squeezed = a.clone().mean_dim(3).mean_dim(2);
    let hidden = relu(conv2d(squeezed, w1, Some(b1), options.clone()));
    let gates = sigmoid(conv2d(hidden, w2, Some(b2), options));
    relu(a * gates + s)
}

#[test]
fn fused_se_end_matches_burn() {
    let device = Device::flex().autodiff();
    assert!(uses_kernels(&device));
    device.seed(21);
    let normal = Distribution::Normal(0.0, 1.0);
    let mut fc1_learns = false;
    for (shape, r) in CASES {
        let c = shape[1];
        // Means of mostly-positive branches, so the gates and the bottleneck's ReLU both vary.
        let a = Tensor::<4>::random(shape, normal, &device) + 0.3;
        let s = Tensor::<4>::random(shape, normal, &device);
        let w1 = Tensor::<4>::random([r, c, 1, 1], normal, &device);
        let w2 = Tensor::<4>::random([c, r, 1, 1], normal, &device);
        // Mostly-open bottleneck units, so that some pass gradient back to fc1.
        let b1 = Tensor::<1>::random([r], normal, &device) + 1.0;
        let b2 = Tensor::<1>::random([c], normal, &device);
        let probe = Tensor::<4>::random(shape, normal, &device);
        let mut outs = Vec::new();
        for ours in [true, false] {
            let [a, s, w1, w2] = [&a, &s, &w1, &w2].map(|t| t.clone().require_grad());
            let [b1, b2] = [&b1, &b2].map(|t| t.clone().require_grad());
            let args = (
                a.clone(),
                w1.clone(),
                b1.clone(),
                w2.clone(),
                b2.clone(),
                s.clone(),
            );
            let y = if ours {
                se_scale_add_relu(args.0, args.1, args.2, args.3, args.4, args.5)
            } else {
                reference(args.0, args.1, args.2, args.3, args.4, args.5)
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push(vec![
                values(y),
                values(a.grad(&grads).unwrap()),
                values(w1.grad(&grads).unwrap()),
                values(b1.grad(&grads).unwrap()),
                values(w2.grad(&grads).unwrap()),
                values(b2.grad(&grads).unwrap()),
                values(s.grad(&grads).unwrap()),
            ]);
        }
        let names = [
            "output",
            "dL/da",
            "dL/dw1",
            "dL/db1",
            "dL/dw2",
            "dL/db2",
            "dL/dshortcut",
        ];
        for (i, what) in names.iter().enumerate() {
            assert_close(
                &format!("{shape:?} r={r} {what}"),
                &outs[0][i],
                &outs[1][i],
                1e-5,
            );
        }
        fc1_learns |= outs[0][2].iter().any(|v| *v != 0.0);
    }
    // The comparisons covered the path through fc1 (some bottleneck unit was open).
    assert!(fc1_learns, "dL/dw1 was zero in every case");
}

#[test]
fn fused_se_end_falls_back_for_other_shapes() {
    // A shortcut that broadcasts, and fc weights of the wrong width: Burn's operations take
    // the call (broadcasting the first, reporting the second as Burn does).
    let device = Device::flex();
    device.seed(23);
    let normal = Distribution::Normal(0.0, 1.0);
    let a = Tensor::<4>::random([2, 8, 3, 3], normal, &device);
    let s = Tensor::<4>::random([1, 8, 3, 3], normal, &device);
    let w1 = Tensor::<4>::random([4, 8, 1, 1], normal, &device);
    let w2 = Tensor::<4>::random([8, 4, 1, 1], normal, &device);
    let b1 = Tensor::<1>::random([4], normal, &device);
    let b2 = Tensor::<1>::random([8], normal, &device);
    let ours = se_scale_add_relu(
        a.clone(),
        w1.clone(),
        b1.clone(),
        w2.clone(),
        b2.clone(),
        s.clone(),
    );
    let want = reference(a, w1, b1, w2, b2, s);
    assert_close("broadcast shortcut", &values(ours), &values(want), 1e-6);
}

#[test]
fn fused_se_end_matches_finite_differences() {
    // Central differences of sum(y * probe) in the branch and in fc1's weight (the two
    // operands whose gradients cross the squeeze and the excitation). Shortcut and fc1 bias
    // sit well above zero, so both ReLUs stay on one side within a step.
    let device = Device::flex().autodiff();
    device.seed(29);
    let normal = Distribution::Normal(0.0, 1.0);
    let shape = [2, 8, 3, 3];
    let a = Tensor::<4>::random(shape, normal, &device);
    let s = Tensor::<4>::random(shape, normal, &device) + 6.0;
    let w1 = Tensor::<4>::random([4, 8, 1, 1], normal, &device);
    let b1 = Tensor::<1>::random([4], normal, &device) + 3.0;
    let w2 = Tensor::<4>::random([8, 4, 1, 1], normal, &device);
    let b2 = Tensor::<1>::random([8], normal, &device);
    let probe = Tensor::<4>::random(shape, normal, &device);
    let loss = |a: Tensor<4>, w1: Tensor<4>| {
        let y = se_scale_add_relu(a, w1, b1.clone(), w2.clone(), b2.clone(), s.clone());
        (y * probe.clone()).sum()
    };
    let (ag, w1g) = (a.clone().require_grad(), w1.clone().require_grad());
    let grads = loss(ag.clone(), w1g.clone()).backward();
    let analytic = [
        values(ag.grad(&grads).unwrap()),
        values(w1g.grad(&grads).unwrap()),
    ];
    let h = 1e-2f32;
    for (which, base) in [values(a.clone()), values(w1.clone())]
        .into_iter()
        .enumerate()
    {
        for at in 0..base.len() {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[at] += delta;
                let (a, w1) = if which == 0 {
                    (
                        Tensor::from_data(TensorData::new(v, shape), &device),
                        w1.clone(),
                    )
                } else {
                    (
                        a.clone(),
                        Tensor::from_data(TensorData::new(v, [4, 8, 1, 1]), &device),
                    )
                };
                values(loss(a, w1))[0]
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            let got = analytic[which][at];
            assert!(
                (numeric - got).abs() <= 2e-2 * (1.0 + numeric.abs()),
                "operand {which} element {at}: numeric {numeric}, analytic {got}"
            );
        }
    }
}
