//! Excitation statistics of a trained SE network (the SE paper's Figure 6; residual or
//! Inception family): for each SE block or module,
//! the mean gate of every channel over the images of each class. Early blocks tend to excite
//! the same channels for every class; late blocks become class-specific.

use std::path::Path;

use burn::tensor::Device;
use cnnzoo_data::Loader;
use cnnzoo_models::Model;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::evaluate::to_tensors;
use crate::plot::{Labelled, panels};

/// One SE block's mean excitations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeBlockStats {
    /// Block path (`stages.1.0`).
    pub name: String,
    /// Mean gate per class (rows, in class order) and channel (columns).
    pub per_class: Vec<Vec<f64>>,
    /// Mean over channels of the standard deviation across classes of the mean gate: 0 when
    /// every class excites the channels alike.
    pub class_spread: f64,
}

/// Excitation statistics of a network over a data set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeStats {
    /// Class names.
    pub classes: Vec<String>,
    /// Images per class seen.
    pub counts: Vec<u64>,
    /// Per SE block, in depth order.
    pub blocks: Vec<SeBlockStats>,
}

/// Runs every batch of `loader` through `model` (eval mode) and averages each SE block's gates
/// per class.
pub fn collect(
    model: &Model,
    loader: &Loader,
    classes: &[String],
    device: &Device,
) -> Result<SeStats, TrainError> {
    if matches!(model, Model::DenseNet(_)) {
        return Err(TrainError::Invalid(
            "excitation statistics need an SE network (seresnet*, seresnext*, se_inception_v3, or --se-reduction)"
                .into(),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let k = classes.len();
    let mut sums: Vec<Vec<Vec<f64>>> = vec![Vec::new(); names.len()];
    let mut counts = vec![0u64; k];
    let bar = ProgressBar::new(loader.num_batches() as u64).with_style(
        ProgressStyle::with_template("se-stats [{bar:30}] {pos}/{len} eta {eta}")
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let labels = batch.labels.clone();
        let (x, _) = to_tensors(batch, device);
        let gates = model.se_gates(x);
        if names.is_empty() {
            if gates.is_empty() {
                return Err(TrainError::Invalid(
                    "this network has no SE units (use a seresnet* / seresnext* / se_inception_v3 model or --se-reduction)"
                        .into(),
                ));
            }
            names = gates.iter().map(|(n, _)| n.clone()).collect();
            sums = vec![Vec::new(); names.len()];
        }
        for (b, (_, g)) in gates.into_iter().enumerate() {
            let [n, c, _, _] = g.dims();
            let values: Vec<f32> = g
                .reshape([n, c])
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Invalid(format!("{e:?}")))?;
            if sums[b].is_empty() {
                sums[b] = vec![vec![0.0; c]; k];
            }
            for (row, &label) in values.chunks(c).zip(&labels) {
                let acc = &mut sums[b][label as usize];
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += f64::from(*v);
                }
            }
        }
        for &l in &labels {
            counts[l as usize] += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let blocks = names
        .into_iter()
        .zip(sums)
        .map(|(name, sums)| {
            let per_class: Vec<Vec<f64>> = sums
                .iter()
                .zip(&counts)
                .map(|(row, &n)| row.iter().map(|s| s / n.max(1) as f64).collect())
                .collect();
            SeBlockStats {
                class_spread: class_spread(&per_class, &counts),
                name,
                per_class,
            }
        })
        .collect();
    Ok(SeStats {
        classes: classes.to_vec(),
        counts,
        blocks,
    })
}

/// Mean over channels of the across-class standard deviation (classes with no images skipped).
fn class_spread(per_class: &[Vec<f64>], counts: &[u64]) -> f64 {
    let rows: Vec<&Vec<f64>> = per_class
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(r, _)| r)
        .collect();
    let channels = rows.first().map_or(0, |r| r.len());
    if rows.len() < 2 || channels == 0 {
        return 0.0;
    }
    let k = rows.len() as f64;
    (0..channels)
        .map(|c| {
            let mean = rows.iter().map(|r| r[c]).sum::<f64>() / k;
            (rows.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / k).sqrt()
        })
        .sum::<f64>()
        / channels as f64
}

/// Mean excitation per channel, one curve per class, for up to six SE blocks spread over the
/// depth (the SE paper's Figure 6).
pub fn plot(path: &Path, stats: &SeStats, title: &str) -> Result<(), TrainError> {
    let n = stats.blocks.len();
    let picks: Vec<usize> = if n <= 6 {
        (0..n).collect()
    } else {
        let mut p: Vec<usize> = (0..6).map(|i| i * (n - 1) / 5).collect();
        p.dedup();
        p
    };
    let content: Vec<(String, &str, Vec<Labelled>)> = picks
        .into_iter()
        .map(|b| {
            let block = &stats.blocks[b];
            let curves = block
                .per_class
                .iter()
                .zip(&stats.classes)
                .map(|(row, class)| {
                    let points = row
                        .iter()
                        .enumerate()
                        .map(|(c, v)| (c as f64, *v))
                        .collect();
                    (class.clone(), points)
                })
                .collect();
            (
                format!("{} (class spread {:.3})", block.name, block.class_spread),
                "mean excitation",
                curves,
            )
        })
        .collect();
    panels(path, title, "channel", &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_zero_for_identical_classes_and_grows_with_difference() {
        let same = vec![vec![0.2, 0.8], vec![0.2, 0.8]];
        assert_eq!(class_spread(&same, &[3, 4]), 0.0);
        let apart = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        assert!((class_spread(&apart, &[1, 1]) - 0.5).abs() < 1e-12);
        // A class without images does not count.
        assert_eq!(class_spread(&apart, &[1, 0]), 0.0);
    }
}
