//! Mixed-precision training: which devices take a lower precision, and f16's dynamic loss
//! scaling (PyTorch's `GradScaler`, with its defaults).
//!
//! The convolutions run in the chosen precision ([`cnnzoo_kernels::precision`]); weights,
//! gradients, optimizer state and BatchNorm statistics stay f32. f16's smallest normal value
//! is about 6e-5, so small gradients would underflow to zero: the loss is multiplied by a large
//! scale before the backward pass, the gradients divided by it afterwards, and a step whose
//! gradients overflowed is skipped while the scale halves. After `growth_interval` steps
//! without overflow the scale doubles again.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use cnnzoo_kernels::{Precision, uses_kernels};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// An error unless `device` can run `precision`: cnnzoo's CPU kernels are f32 only.
pub fn check_device(precision: Precision, device: &Device) -> Result<(), TrainError> {
    if precision == Precision::F32 {
        return Ok(());
    }
    if uses_kernels(device) {
        return Err(TrainError::Invalid(format!(
            "--precision {precision} needs a GPU device (vulkan or libtorch): cnnzoo's CPU \
             kernels compute in f32, so use --precision f32 on the CPU"
        )));
    }
    if !device.supports_dtype(precision.dtype()) {
        return Err(TrainError::Invalid(format!(
            "--precision {precision}: this device ({device:?}) has no {precision} arithmetic; \
             use --precision f32{}",
            if precision == Precision::Bf16 {
                " or f16"
            } else {
                " or bf16"
            }
        )));
    }
    Ok(())
}

/// Dynamic loss scaling for f16 training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the loss is multiplied by before the backward pass.
    pub scale: f32,
    /// The scale's factor after `growth_interval` steps without overflow.
    pub growth_factor: f32,
    /// The scale's factor after an overflow.
    pub backoff_factor: f32,
    /// Overflow-free steps before the scale grows.
    pub growth_interval: u32,
    /// Overflow-free steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped because their gradients overflowed.
    pub skipped: u64,
}

impl Default for LossScaler {
    /// PyTorch's `GradScaler` defaults: scale 2^16, x2 every 2000 good steps, x0.5 on overflow.
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            good_steps: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    /// Records one step's outcome: `finite` is whether every unscaled gradient was finite.
    /// Returns whether the optimizer should apply the step.
    pub fn update(&mut self, finite: bool) -> bool {
        if !finite {
            // Never below the smallest normal f32: the scale must stay invertible.
            self.scale = (self.scale * self.backoff_factor).max(f32::MIN_POSITIVE);
            self.good_steps = 0;
            self.skipped += 1;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps >= self.growth_interval {
            let grown = self.scale * self.growth_factor;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.good_steps = 0;
        }
        true
    }

    /// The gradients of a loss that was multiplied by [`scale`](Self::scale), divided by it
    /// in place; returns whether they are all finite (one device synchronisation).
    pub fn unscale<M: Module>(&self, grads: &mut GradientsParams, model: &M) -> bool {
        unscale(grads, model, self.scale)
    }
}

/// One optimizer step of `model` at learning rate `lr` from `loss`; with a `scaler` (f16), the
/// loss is scaled before the backward pass and the gradients unscaled after it, and a step
/// whose gradients overflowed is skipped (the scaler counts it).
pub fn step<M: Module>(
    model: M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    loss: Tensor<1>,
    scaler: Option<&mut LossScaler>,
) -> M {
    let Some(scaler) = scaler else {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        return optim.step(lr, model, grads);
    };
    let scaled = loss.mul_scalar(scaler.scale);
    let mut grads = GradientsParams::from_grads(scaled.backward(), &model);
    let finite = scaler.unscale(&mut grads, &model);
    if scaler.update(finite) {
        optim.step(lr, model, grads)
    } else {
        model
    }
}

/// Divides every gradient of `model`'s parameters in `grads` by `scale`; returns whether all of
/// them are finite. The sums of all gradients are added on the device and read once: any NaN
/// or infinity makes the total non-finite.
pub fn unscale<M: Module>(grads: &mut GradientsParams, model: &M, scale: f32) -> bool {
    struct Unscale<'a> {
        grads: &'a mut GradientsParams,
        inverse: f64,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Unscale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(g) = self.grads.remove::<D>(param.id) else {
                return;
            };
            let g = g.mul_scalar(self.inverse);
            let sum = g.clone().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sum,
                None => sum,
            });
            self.grads.register::<D>(param.id, g);
        }
    }
    let mut visitor = Unscale {
        grads,
        inverse: 1.0 / f64::from(scale),
        total: None,
    };
    model.visit(&mut visitor);
    match visitor.total {
        Some(total) => total.into_scalar::<f32>().is_finite(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn overflow_halves_the_scale_and_skips_the_step() {
        let mut s = LossScaler {
            good_steps: 7,
            ..LossScaler::default()
        };
        assert!(!s.update(false));
        assert_eq!((s.scale, s.good_steps, s.skipped), (32768.0, 0, 1));
        assert!(!s.update(false));
        assert_eq!((s.scale, s.skipped), (16384.0, 2));
        assert!(s.update(true));
        assert_eq!((s.scale, s.good_steps), (16384.0, 1));
    }

    #[test]
    fn the_scale_grows_after_the_interval_and_stays_finite() {
        let mut s = LossScaler {
            growth_interval: 3,
            ..LossScaler::default()
        };
        for _ in 0..2 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale, 65536.0);
        assert!(s.update(true));
        assert_eq!((s.scale, s.good_steps), (131072.0, 0));
        // An overflow in between restarts the count.
        assert!(s.update(true));
        s.update(false);
        for _ in 0..2 {
            s.update(true);
        }
        assert_eq!(s.scale, 65536.0, "grew too early after an overflow");
        s.update(true);
        assert_eq!(s.scale, 131072.0);
        // Near f32's top the scale stops growing instead of becoming infinite.
        let mut s = LossScaler {
            scale: f32::MAX / 1.5,
            growth_interval: 1,
            ..LossScaler::default()
        };
        s.update(true);
        assert_eq!(s.scale, f32::MAX / 1.5);
        // And repeated overflows never reach zero.
        for _ in 0..300 {
            s.update(false);
        }
        assert!(s.scale > 0.0);
    }

    fn grad_values(grads: &GradientsParams, model: &Linear) -> Vec<f32> {
        let mut v = grads
            .get::<2>(model.weight.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        v.extend(
            grads
                .get::<1>(model.bias.as_ref().unwrap().id)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        v
    }

    #[test]
    fn unscaling_recovers_the_gradients_and_finds_overflow() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model: Linear = LinearConfig::new(5, 3).init(&device);
        let x: Tensor<2> = Tensor::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
        let loss = |scale: f32| {
            model
                .forward(x.clone())
                .powi_scalar(2)
                .sum()
                .mul_scalar(scale)
        };
        let plain = GradientsParams::from_grads(loss(1.0).backward(), &model);
        let reference = grad_values(&plain, &model);
        let scaler = LossScaler {
            scale: 1024.0,
            ..LossScaler::default()
        };
        let mut grads = GradientsParams::from_grads(loss(scaler.scale).backward(), &model);
        assert!(grad_values(&grads, &model)[0].abs() > 100.0 * reference[0].abs());
        assert!(scaler.unscale(&mut grads, &model));
        let unscaled = grad_values(&grads, &model);
        for (a, b) in unscaled.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
        // An overflowing scale (inf) or a NaN gradient is found.
        let mut grads = GradientsParams::from_grads(loss(f32::INFINITY).backward(), &model);
        assert!(!unscale(&mut grads, &model, f32::INFINITY));
        let mut grads = GradientsParams::from_grads(loss(f32::NAN).backward(), &model);
        assert!(!unscale(&mut grads, &model, 2.0));
    }

    #[test]
    fn the_cpu_refuses_lower_precisions_with_a_reason() {
        let device = Device::flex();
        assert!(check_device(Precision::F32, &device).is_ok());
        for p in [Precision::Bf16, Precision::F16] {
            let e = check_device(p, &device.clone().autodiff())
                .unwrap_err()
                .to_string();
            assert!(e.contains(p.name()) && e.contains("f32"), "{e}");
        }
    }
}
