//! Flex tensors as the kernels take them: contiguous `f32` slices in, new tensors out, and the
//! shape tests that decide whether a call runs cnnzoo's kernel or goes to Burn's operation.

use std::borrow::Cow;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};

/// The tensor's elements as a contiguous `f32` slice (borrowed when already so).
pub(crate) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("f32 tensor")
                .to_vec(),
        ),
    }
}

/// A rank-4 tensor of `values`.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A tensor with `values` and `like`'s shape.
pub(crate) fn like(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

/// A rank-1 tensor.
pub(crate) fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, [n]))
}

/// Whether `t` has exactly the dimensions `dims` (its rank included).
pub(crate) fn shaped(t: &FlexTensor, dims: &[usize]) -> bool {
    let s = t.shape();
    s.num_dims() == dims.len() && dims.iter().enumerate().all(|(i, d)| s[i] == *d)
}

/// Whether the tensors are `f32` and of one shape (else Burn's operations take the call and
/// broadcast or report the mismatch).
pub(crate) fn same_f32_shape(tensors: &[&FlexTensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape() == tensors[0].shape())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Deterministic tensors and a comparison for the operations' tests.

    use super::*;

    pub(crate) fn tensor(shape: &[usize], seed: u32, shift: f32) -> FlexTensor {
        let n: usize = shape.iter().product();
        let values = (0..n as u32)
            .map(|i| {
                let h = (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 8) as f32;
                h / (1u32 << 24) as f32 * 2.0 - 1.0 + shift
            })
            .collect();
        FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
    }

    pub(crate) fn close(what: &str, a: &FlexTensor, b: &FlexTensor) {
        assert_eq!(a.shape(), b.shape(), "{what}: shape");
        let worst = f32s(a)
            .iter()
            .zip(f32s(b).iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{what}: max difference {worst}");
    }
}
