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

/// The six operands of one SE block end: branch `a`, fc1 `w1` / `b1`, fc2 `w2` / `b2`,
/// shortcut `s`.
#[derive(Clone)]
struct Operands {
    a: Tensor<4>,
    w1: Tensor<4>,
    b1: Tensor<1>,
    w2: Tensor<4>,
    b2: Tensor<1>,
    s: Tensor<4>,
}

impl Operands {
    /// Normal draws for a branch `shape`, a shortcut `shortcut` and bottleneck width `r`,
    /// shifted by `shift` (branch, shortcut, fc1 bias).
    fn random(
        shape: [usize; 4],
        shortcut: [usize; 4],
        r: usize,
        shift: [f32; 3],
        device: &Device,
    ) -> Self {
        let normal = Distribution::Normal(0.0, 1.0);
        let c = shape[1];
        Self {
            a: Tensor::random(shape, normal, device) + shift[0],
            w1: Tensor::random([r, c, 1, 1], normal, device),
            b1: Tensor::random([r], normal, device) + shift[2],
            w2: Tensor::random([c, r, 1, 1], normal, device),
            b2: Tensor::random([c], normal, device),
            s: Tensor::random(shortcut, normal, device) + shift[1],
        }
    }

    /// The same operands as fresh autodiff leaves.
    fn tracked(&self) -> Self {
        Self {
            a: self.a.clone().require_grad(),
            w1: self.w1.clone().require_grad(),
            b1: self.b1.clone().require_grad(),
            w2: self.w2.clone().require_grad(),
            b2: self.b2.clone().require_grad(),
            s: self.s.clone().require_grad(),
        }
    }

    /// cnnzoo's fused operation.
    fn fused(self) -> Tensor<4> {
        se_scale_add_relu(self.a, self.w1, self.b1, self.w2, self.b2, self.s)
    }

    /// The unfused expression, as the SE unit computes it from Burn's operations.
    fn unfused(self) -> Tensor<4> {
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let squeezed = self.a.clone().mean_dim(3).mean_dim(2);
        let hidden = relu(conv2d(squeezed, self.w1, Some(self.b1), options.clone()));
        let gates = sigmoid(conv2d(hidden, self.w2, Some(self.b2), options));
        relu(self.a * gates + self.s)
    }
}

#[test]
fn fused_se_end_matches_burn() {
    let device = Device::flex().autodiff();
    assert!(uses_kernels(&device));
    device.seed(21);
    let mut fc1_learns = false;
    for (shape, r) in CASES {
        // Means of mostly-positive branches, so the gates and the bottleneck's ReLU both vary;
        // mostly-open bottleneck units, so that some pass gradient back to fc1.
        let ops = Operands::random(shape, shape, r, [0.3, 0.0, 1.0], &device);
        let probe = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let mut outs = Vec::new();
        for ours in [true, false] {
            let t = ops.tracked();
            let y = if ours {
                t.clone().fused()
            } else {
                t.clone().unfused()
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            outs.push(vec![
                values(y),
                values(t.a.grad(&grads).unwrap()),
                values(t.w1.grad(&grads).unwrap()),
                values(t.b1.grad(&grads).unwrap()),
                values(t.w2.grad(&grads).unwrap()),
                values(t.b2.grad(&grads).unwrap()),
                values(t.s.grad(&grads).unwrap()),
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
            let label = format!("{shape:?} r={r} {what}");
            assert_close(&label, &outs[0][i], &outs[1][i], 1e-5);
        }
        fc1_learns |= outs[0][2].iter().any(|v| *v != 0.0);
    }
    // The comparisons covered the path through fc1 (some bottleneck unit was open).
    assert!(fc1_learns, "dL/dw1 was zero in every case");
}

#[test]
fn fused_se_end_falls_back_for_other_shapes() {
    // A shortcut that broadcasts: Burn's operations take the call.
    let device = Device::flex();
    device.seed(23);
    let ops = Operands::random([2, 8, 3, 3], [1, 8, 3, 3], 4, [0.0; 3], &device);
    let (ours, want) = (ops.clone().fused(), ops.unfused());
    assert_close("broadcast shortcut", &values(ours), &values(want), 1e-6);
}

#[test]
fn fused_se_end_matches_finite_differences() {
    // Central differences of sum(y * probe) in the branch and in fc1's weight (the two
    // operands whose gradients cross the squeeze and the excitation). Shortcut and fc1 bias
    // sit well above zero, so both ReLUs stay on one side within a step.
    let device = Device::flex().autodiff();
    device.seed(29);
    let shape = [2, 8, 3, 3];
    let ops = Operands::random(shape, shape, 4, [0.0, 6.0, 3.0], &device);
    let probe = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let loss = |a: Tensor<4>, w1: Tensor<4>| {
        let y = Operands {
            a,
            w1,
            ..ops.clone()
        }
        .fused();
        (y * probe.clone()).sum()
    };
    let (ag, w1g) = (ops.a.clone().require_grad(), ops.w1.clone().require_grad());
    let grads = loss(ag.clone(), w1g.clone()).backward();
    let analytic = [
        values(ag.grad(&grads).unwrap()),
        values(w1g.grad(&grads).unwrap()),
    ];
    let h = 1e-2f32;
    for (which, base) in [values(ops.a.clone()), values(ops.w1.clone())]
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
                        ops.w1.clone(),
                    )
                } else {
                    let w1 = Tensor::from_data(TensorData::new(v, [4, 8, 1, 1]), &device);
                    (ops.a.clone(), w1)
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
