//! Stochastic depth (Huang et al. 2016): in training, each sample's residual branch is dropped
//! with probability `prob` and the survivors scaled by 1 / (1 - prob), so the expected output is
//! unchanged and inference uses the whole network (timm's `DropPath`).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Distribution, Tensor};

/// Per-sample drop of a whole residual branch, active only in training.
#[derive(Module, Debug)]
pub struct DropPath {
    /// Carries the drop probability and the training flag that `valid()` turns off.
    pub gate: Dropout,
}

impl DropPath {
    /// A drop path with probability `prob` in `[0, 1)`.
    pub fn new(prob: f64) -> Self {
        DropPath {
            gate: DropoutConfig::new(prob).init(),
        }
    }

    /// The drop probability.
    pub fn prob(&self) -> f64 {
        self.gate.prob
    }

    /// True when a forward pass on `x` drops paths: training (an autodiff device, not switched
    /// to inference) with a positive probability.
    pub fn active(&self, x: &Tensor<4>) -> bool {
        self.gate.prob > 0.0 && self.gate.training.is_enabled() && x.device().is_autodiff()
    }

    /// Zeroes whole samples of `x` at random in training; the identity otherwise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.active(&x) {
            return x;
        }
        let keep = 1.0 - self.gate.prob;
        let [n, ..] = x.dims();
        let mask = Tensor::<4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
        x * (mask / keep)
    }
}
