//! Mixed precision on the GPU backends: convolutions computed in bf16 or f16, everything else
//! in f32, as PyTorch's autocast does for the layers that run on tensor cores.
//!
//! The parameters stay f32 (the optimizer updates f32 master weights) and so do BatchNorm's
//! statistics: [`conv2d`](crate::conv2d) casts its input, weight and bias to the compute type,
//! convolves, and casts the output back to f32. Autodiff records the casts, so the gradients
//! reach the f32 weights as f32. The setting is process-wide, like `torch.autocast` around a
//! training loop; cnnzoo's CPU kernels are f32 only and ignore it (the trainer and `bench`
//! refuse a lower precision on the CPU instead of silently running f32).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The arithmetic of the convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Convolutions in bfloat16 (f32's range, 8 bits of mantissa): no loss scaling needed.
    Bf16,
    /// Convolutions in float16 (5-bit exponent): training needs dynamic loss scaling.
    F16,
}

impl Precision {
    /// Every precision, in the order the command line lists them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The tensor type convolutions compute in.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    /// Whether training in this precision needs its loss scaled (f16's small range lets
    /// small gradients underflow to zero).
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::F16
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            other => Err(format!(
                "unknown precision '{other}' (expected f32, bf16 or f16)"
            )),
        }
    }
}

static AUTOCAST: AtomicU8 = AtomicU8::new(0);

/// Sets the precision every later convolution on a GPU backend computes in.
pub fn set_autocast(precision: Precision) {
    AUTOCAST.store(precision as u8, Ordering::SeqCst);
}

/// The precision convolutions on a GPU backend compute in now.
pub fn autocast() -> Precision {
    // Only `set_autocast` stores, and it stores a discriminant, which is also an index of ALL.
    Precision::ALL[usize::from(AUTOCAST.load(Ordering::SeqCst))]
}

/// `conv2d(x, weight, bias)` computed in `precision` and returned in `x`'s type: the operands
/// are cast down, Burn's convolution runs (on tensor cores where the backend has them), and the
/// output is cast back. Operands that are not f32 (a model already in half precision) are
/// left as they are.
pub fn conv2d_in(
    precision: Precision,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if precision == Precision::F32 || x.dtype() != DType::F32 {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let low = precision.dtype();
    let y = burn::tensor::module::conv2d(
        x.cast(low),
        weight.cast(low),
        bias.map(|b| b.cast(low)),
        options,
    );
    y.cast(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways_and_unknown_is_named() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("BFloat16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("fp16".parse::<Precision>(), Ok(Precision::F16));
        let e = "int8".parse::<Precision>().unwrap_err();
        assert!(e.contains("'int8'") && e.contains("bf16"), "{e}");
        assert!(Precision::F16.needs_loss_scaling());
        assert!(!Precision::Bf16.needs_loss_scaling() && !Precision::F32.needs_loss_scaling());
        // The process-wide setting reads back what was set (only GPU convolutions follow it).
        for p in Precision::ALL.into_iter().rev() {
            set_autocast(p);
            assert_eq!(autocast(), p);
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Largest difference relative to the largest magnitude of `reference`.
    fn relative(a: &[f32], reference: &[f32]) -> f32 {
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(reference)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn low_precision_convolution_is_close_returns_f32_and_trains_f32_weights() {
        use burn::tensor::{Device, Distribution};
        // Flex computes bf16 and f16 convolutions (through f32), so the casts and their
        // backward can be checked on the CPU; the GPU backends run the same calls.
        let device = Device::flex().autodiff();
        device.seed(3);
        let x: Tensor<4> = Tensor::random([2, 8, 9, 9], Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random([6, 8, 3, 3], Distribution::Normal(0.0, 0.2), &device);
        let b: Tensor<1> = Tensor::random([6], Distribution::Normal(0.0, 1.0), &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let grads_of = |p: Precision| {
            let (x, w, b) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
            );
            let y = conv2d_in(p, x.clone(), w.clone(), Some(b.clone()), options.clone());
            assert_eq!(y.dtype(), DType::F32, "{p}: output type");
            let out = values(y.clone());
            let g = y.powi_scalar(2).sum().backward();
            let (gw, gx) = (w.grad(&g).unwrap(), x.grad(&g).unwrap());
            assert_eq!(gw.dtype(), DType::F32, "{p}: weight gradient type");
            assert_eq!(gx.dtype(), DType::F32, "{p}: input gradient type");
            (out, values(gw), values(gx))
        };
        let (y32, gw32, gx32) = grads_of(Precision::F32);
        for (p, tolerance) in [(Precision::Bf16, 2e-2), (Precision::F16, 1e-2)] {
            let (y, gw, gx) = grads_of(p);
            let (ey, ew, ex) = (
                relative(&y, &y32),
                relative(&gw, &gw32),
                relative(&gx, &gx32),
            );
            assert!(
                ey < tolerance && ew < tolerance && ex < tolerance,
                "{p}: {ey} {ew} {ex}"
            );
            // Rounded operands: the result is not f32's bit for bit, so the casts happened.
            assert!(ey > 0.0, "{p}: the output equals f32's exactly");
        }
    }
}
