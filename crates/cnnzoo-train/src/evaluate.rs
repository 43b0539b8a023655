//! Evaluation: loss, top-1, top-5, per-class accuracy and the confusion matrix.

use burn::tensor::{Device, Int, Tensor, TensorData};
use cnnzoo_data::{Batch, Loader};
use cnnzoo_models::Model;
use serde::Serialize;

use crate::error::TrainError;

/// Everything an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy (top-k with k = classes when fewer than 5).
    pub top5: f64,
    /// Accuracy per true class.
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Class names.
    pub classes: Vec<String>,
    /// Samples evaluated.
    pub samples: usize,
}

/// A batch as tensors on `device`.
pub fn to_tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.shape[0];
    let x = Tensor::from_data(TensorData::new(batch.images, batch.shape), device);
    let labels: Vec<i64> = batch.labels.iter().map(|&l| i64::from(l)).collect();
    let y = Tensor::from_data(TensorData::new(labels, [n]), device);
    (x, y)
}

/// Per-sample cross-entropy (natural log) and rank of the true class, from host logits.
pub fn score(logits: &[f32], labels: &[u32], classes: usize) -> Vec<(f64, usize, usize)> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let max = f64::from(row.iter().copied().fold(f32::MIN, f32::max));
            let lse = max
                + row
                    .iter()
                    .map(|&v| (f64::from(v) - max).exp())
                    .sum::<f64>()
                    .ln();
            let target = f64::from(row[label as usize]);
            let rank = row.iter().filter(|&&v| f64::from(v) > target).count();
            let argmax = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                )
                .0;
            (lse - target, rank, argmax)
        })
        .collect()
}

/// Checks, before any forward pass, that `model` takes `[C, H, W]` inputs and predicts
/// `classes` classes (Burn's kernels assert on a mismatch instead of returning an error).
pub fn check_input(model: &Model, input: [usize; 3], classes: usize) -> Result<(), TrainError> {
    let [c, h, w] = input;
    let logits = model.logits_for(input).map_err(|e| {
        TrainError::Invalid(format!(
            "the model cannot take {c}x{h}x{w} inputs (the data's images): {e}"
        ))
    })?;
    if logits != classes {
        return Err(TrainError::Invalid(format!(
            "the model predicts {logits} classes, the data has {classes}"
        )));
    }
    Ok(())
}

/// The error for logits that are not all finite: with weights checked at load, only
/// magnitudes that overflow on the way through the network produce them.
pub fn non_finite_logits(value: f32) -> TrainError {
    TrainError::Invalid(format!(
        "the model produced a {value} logit: its weights overflow float32 on the way through the network (a damaged or diverged checkpoint?)"
    ))
}

/// Evaluates `model` (switched to inference behaviour) on every batch of `loader`.
pub fn evaluate(
    model: &Model,
    loader: &Loader,
    classes: &[String],
    device: &Device,
) -> Result<EvalReport, TrainError> {
    use burn::module::Module;
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let (mut loss, mut top1, mut top5, mut n) = (0.0f64, 0usize, 0usize, 0usize);
    let mut checked = None;
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let [_, c, h, w] = batch.shape;
        if checked != Some([c, h, w]) {
            check_input(&model, [c, h, w], k)?;
            if cnnzoo_kernels::uses_kernels(&device) {
                let summary = model
                    .summary([c, h, w])
                    .map_err(|e| TrainError::Invalid(e.to_string()))?;
                let what = format!("evaluation at batch size {}", batch.shape[0]);
                crate::memory::check_fits(&summary, batch.shape[0], false, &what)?;
            }
            checked = Some([c, h, w]);
        }
        let labels = batch.labels.clone();
        let (x, _) = to_tensors(batch, &device);
        let logits: Vec<f32> = model
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| TrainError::Invalid(format!("{e:?}")))?;
        if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
            return Err(non_finite_logits(*v));
        }
        for ((l, rank, pred), &label) in score(&logits, &labels, k).into_iter().zip(&labels) {
            loss += l;
            top1 += usize::from(rank == 0);
            top5 += usize::from(rank < 5);
            confusion[label as usize][pred] += 1;
            n += 1;
        }
    }
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64)
        .collect();
    let n_f = n.max(1) as f64;
    Ok(EvalReport {
        loss: loss / n_f,
        top1: top1 as f64 / n_f,
        top5: top5 as f64 / n_f,
        per_class,
        confusion,
        classes: classes.to_vec(),
        samples: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_cannot_take_the_data_is_refused_before_a_forward_pass() {
        let one_channel = cnnzoo_models::create(
            "resnet20",
            cnnzoo_models::ModelOptions {
                num_classes: Some(10),
                in_channels: Some(1),
            },
        )
        .unwrap()
        .init(&Device::default());
        check_input(&one_channel, [1, 28, 28], 10).unwrap();
        let e = check_input(&one_channel, [3, 32, 32], 10).unwrap_err();
        assert!(e.to_string().contains("input channels"), "{e}");
        let e = check_input(&one_channel, [1, 28, 28], 100).unwrap_err();
        assert!(e.to_string().contains("predicts 10 classes"), "{e}");
        let inception =
            cnnzoo_models::create("inception_v3", cnnzoo_models::ModelOptions::default())
                .unwrap()
                .init(&Device::default());
        let e = check_input(&inception, [3, 16, 16], 1000).unwrap_err();
        assert!(e.to_string().contains("16x16"), "{e}");
    }

    #[test]
    fn scores_rank_loss_and_argmax() {
        let logits = [0.0f32, 2.0, 1.0, 5.0, 0.0, 0.0];
        let s = score(&logits, &[1, 2], 3);
        assert_eq!((s[0].1, s[0].2), (0, 1));
        assert_eq!((s[1].1, s[1].2), (1, 0));
        let expected = (1.0f64 + (-2.0f64).exp() + (-1.0f64).exp()).ln();
        assert!((s[0].0 - expected).abs() < 1e-9);
    }
}
