//! The lesion study of "Residual networks behave like ensembles of relatively shallow
//! networks" (Veit et al. 2016): delete residual blocks of a trained network at test time and
//! measure the accuracy. Deleting one block of a residual net costs little (the other paths
//! still carry the signal), deleting k blocks degrades smoothly; deleting one layer of a plain
//! net breaks it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use cnnzoo_data::Loader;
use cnnzoo_models::models::resnet::ResNet;
use cnnzoo_models::{FuseBn, Model};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::evaluate::to_tensors;
use crate::plot::{Labelled, panels};

/// Accuracy with one block deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SingleLesion {
    /// Block index in depth order.
    pub block: usize,
    /// Block path (`stages.1.0`).
    pub name: String,
    /// True for a block that changes the shape (its shortcut is not the identity).
    pub downsampling: bool,
    /// Top-1 accuracy with this block deleted; `None` when it cannot be deleted (a plain
    /// net's downsampling block).
    pub top1: Option<f64>,
}

/// Accuracy with k random non-downsampling blocks deleted, over several draws.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RandomLesion {
    /// Blocks deleted.
    pub k: usize,
    /// Mean top-1 over the draws.
    pub mean: f64,
    /// Standard deviation of top-1 over the draws.
    pub std: f64,
    /// Lowest and highest top-1 of the draws.
    pub range: (f64, f64),
}

/// The lesion study of one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetLesions {
    /// Which network (`resnet56`, `resnet56:shortcut=none`).
    pub label: String,
    /// Top-1 of the intact network.
    pub baseline: f64,
    /// One block deleted at a time, in depth order.
    pub single: Vec<SingleLesion>,
    /// k random non-downsampling blocks deleted, k = 1 ..
    pub random: Vec<RandomLesion>,
}

/// Test batches held as tensors, so that every lesion reads the same images without decoding
/// them again.
pub struct TestSet {
    batches: Vec<(Tensor<4>, Vec<u32>)>,
}

impl TestSet {
    /// Reads every batch of `loader` onto `device`.
    pub fn load(loader: &Loader, device: &Device) -> Result<Self, TrainError> {
        let mut batches = Vec::new();
        for batch in loader.epoch(0, 0) {
            let batch = batch?;
            let labels = batch.labels.clone();
            let (x, _): (Tensor<4>, Tensor<1, Int>) = to_tensors(batch, device);
            batches.push((x, labels));
        }
        Ok(TestSet { batches })
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|(_, l)| l.len()).sum()
    }

    /// True when no image is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Top-1 accuracy of `net` with the blocks flagged in `deleted` removed.
    pub fn top1(&self, net: &ResNet, deleted: &[bool]) -> Result<f64, TrainError> {
        let mut correct = 0usize;
        for (x, labels) in &self.batches {
            let logits = net
                .forward_lesioned(x.clone(), deleted)
                .map_err(TrainError::Invalid)?;
            let pred: Vec<i64> = logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .map_err(|e| TrainError::Invalid(format!("{e:?}")))?;
            correct += pred
                .iter()
                .zip(labels)
                .filter(|(p, l)| **p == i64::from(**l))
                .count();
        }
        Ok(correct as f64 / self.len().max(1) as f64)
    }
}

/// The residual network inside `model`, for inference (BatchNorm folded), or why not.
pub fn inference_net(model: Model) -> Result<ResNet, TrainError> {
    match model.valid().fuse_bn() {
        Model::ResNet(net) => Ok(net),
        _ => Err(TrainError::Invalid(
            "the lesion study needs a network of the residual family (resnet, plain, preact, ...)"
                .into(),
        )),
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Runs the study on `net`: the intact accuracy, each block deleted in turn, then k random
/// non-downsampling blocks for k = 1 ..= `max_k` (all of them by default), `draws` draws each,
/// seeded by `seed` (the same draws for every network of the same depth).
pub fn study(
    label: &str,
    net: &ResNet,
    test: &TestSet,
    draws: usize,
    max_k: Option<usize>,
    seed: u64,
) -> Result<NetLesions, TrainError> {
    let blocks: Vec<_> = net.blocks().collect();
    let names: Vec<String> = net
        .stages
        .iter()
        .enumerate()
        .flat_map(|(i, s)| (0..s.len()).map(move |j| format!("stages.{i}.{j}")))
        .collect();
    let free: Vec<usize> = (0..blocks.len())
        .filter(|&k| blocks[k].keeps_shape())
        .collect();
    let max_k = max_k.unwrap_or(free.len()).min(free.len());
    let total = 1 + blocks.len() + max_k * draws;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("lesion {msg} [{bar:30}] {pos}/{len} eta {eta}")
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let none = vec![false; blocks.len()];
    let baseline = test.top1(net, &none)?;
    bar.inc(1);
    let mut single = Vec::with_capacity(blocks.len());
    for (k, block) in blocks.iter().enumerate() {
        let top1 = if block.deletable() {
            let mut deleted = none.clone();
            deleted[k] = true;
            Some(test.top1(net, &deleted)?)
        } else {
            None
        };
        single.push(SingleLesion {
            block: k,
            name: names[k].clone(),
            downsampling: !block.keeps_shape(),
            top1,
        });
        bar.inc(1);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut random = Vec::with_capacity(max_k);
    for k in 1..=max_k {
        let mut accs = Vec::with_capacity(draws);
        for _ in 0..draws {
            let mut deleted = none.clone();
            for i in sample(&mut rng, free.len(), k) {
                deleted[free[i]] = true;
            }
            accs.push(test.top1(net, &deleted)?);
            bar.inc(1);
        }
        let (mean, std) = mean_std(&accs);
        let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        random.push(RandomLesion {
            k,
            mean,
            std,
            range: (lo, hi),
        });
    }
    bar.finish_and_clear();
    Ok(NetLesions {
        label: label.to_string(),
        baseline,
        single,
        random,
    })
}

/// Two panels: top-1 with each block deleted (the intact accuracy as a flat line), and top-1
/// against the number of random blocks deleted (mean over the draws).
pub fn plot(path: &Path, nets: &[NetLesions], title: &str) -> Result<(), TrainError> {
    let mut single: Vec<Labelled> = Vec::new();
    let mut random: Vec<Labelled> = Vec::new();
    for n in nets {
        let points = n
            .single
            .iter()
            .filter_map(|s| s.top1.map(|a| (s.block as f64, 100.0 * a)))
            .collect();
        single.push((format!("{}: one block deleted", n.label), points));
        let last = n.single.len().saturating_sub(1) as f64;
        single.push((
            format!("{}: intact", n.label),
            vec![(0.0, 100.0 * n.baseline), (last, 100.0 * n.baseline)],
        ));
        let mut points = vec![(0.0, 100.0 * n.baseline)];
        points.extend(n.random.iter().map(|r| (r.k as f64, 100.0 * r.mean)));
        random.push((format!("{}: mean of draws", n.label), points));
    }
    panels(
        path,
        title,
        "deleted block (depth order) | number of blocks deleted",
        &[
            (
                "test accuracy with one block deleted".into(),
                "top-1 (%)",
                single,
            ),
            (
                "test accuracy with k random blocks deleted".into(),
                "top-1 (%)",
                random,
            ),
        ],
    )
}

/// The markdown report: command, what was deleted, the tables and what they show.
pub fn report(
    nets: &[NetLesions],
    samples: usize,
    draws: usize,
    command: &str,
    chart: &str,
) -> String {
    let mut md = format!(
        "# Lesion study\n\nCommand: `{command}`\n\nTest accuracy ({samples} test images) of trained networks with residual blocks deleted at test time (Veit et al. 2016). A deleted residual block keeps its shortcut: the identity, or for a downsampling block its zero-pad / projection alone. A deleted plain block becomes the identity; a plain net's downsampling blocks cannot be deleted. Random deletions draw k of the non-downsampling blocks, {draws} draws per k (same seed for every net).\n\n![lesion study]({chart})\n\n"
    );
    md += "## One block deleted\n\n| block | downsampling |";
    for n in nets {
        md += &format!(" {} top-1 % |", n.label);
    }
    md += "\n|---|---|";
    md += &"---:|".repeat(nets.len());
    md += "\n| (none) | |";
    for n in nets {
        md += &format!(" {:.2} |", 100.0 * n.baseline);
    }
    md += "\n";
    if let Some(first) = nets.first() {
        for (k, s) in first.single.iter().enumerate() {
            md += &format!(
                "| {} | {} |",
                s.name,
                if s.downsampling { "yes" } else { "" }
            );
            for n in nets {
                match n.single.get(k).and_then(|s| s.top1) {
                    Some(a) => md += &format!(" {:.2} |", 100.0 * a),
                    None => md += " n/a |",
                }
            }
            md += "\n";
        }
    }
    md += "\n## k random non-downsampling blocks deleted\n\n| k |";
    for n in nets {
        md += &format!(" {} mean top-1 % (std, min-max) |", n.label);
    }
    md += "\n|---:|";
    md += &"---:|".repeat(nets.len());
    md += "\n";
    let rows = nets.iter().map(|n| n.random.len()).max().unwrap_or(0);
    for r in 0..rows {
        md += &format!("| {} |", r + 1);
        for n in nets {
            match n.random.get(r) {
                Some(x) => {
                    md += &format!(
                        " {:.2} ({:.2}, {:.2}-{:.2}) |",
                        100.0 * x.mean,
                        100.0 * x.std,
                        100.0 * x.range.0,
                        100.0 * x.range.1
                    );
                }
                None => md += " |",
            }
        }
        md += "\n";
    }
    md += "\n## Findings\n\n";
    for f in findings(nets) {
        md += &format!("- {f}\n");
    }
    md
}

/// What the numbers show, in sentences computed from them.
pub fn findings(nets: &[NetLesions]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nets {
        let free: Vec<f64> = n
            .single
            .iter()
            .filter(|s| !s.downsampling)
            .filter_map(|s| s.top1)
            .collect();
        let down: Vec<(String, f64)> = n
            .single
            .iter()
            .filter(|s| s.downsampling)
            .filter_map(|s| s.top1.map(|a| (s.name.clone(), a)))
            .collect();
        if !free.is_empty() {
            let (mean, _) = mean_std(&free);
            let worst = free.iter().copied().fold(f64::INFINITY, f64::min);
            out.push(format!(
                "{}: deleting one non-downsampling block leaves {:.2}% top-1 on average (worst {:.2}%), against {:.2}% intact: a mean drop of {:.2} points.",
                n.label,
                100.0 * mean,
                100.0 * worst,
                100.0 * n.baseline,
                100.0 * (n.baseline - mean)
            ));
        }
        for (name, a) in down {
            out.push(format!(
                "{}: deleting the downsampling block {name} gives {:.2}%.",
                n.label,
                100.0 * a
            ));
        }
        if let (Some(first), Some(last)) = (n.random.first(), n.random.last()) {
            out.push(format!(
                "{}: with k random blocks deleted, top-1 goes from {:.2}% (k = {}) to {:.2}% (k = {}).",
                n.label,
                100.0 * first.mean,
                first.k,
                100.0 * last.mean,
                last.k
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(label: &str, baseline: f64, single: &[(bool, Option<f64>)]) -> NetLesions {
        NetLesions {
            label: label.into(),
            baseline,
            single: single
                .iter()
                .enumerate()
                .map(|(k, (down, top1))| SingleLesion {
                    block: k,
                    name: format!("stages.0.{k}"),
                    downsampling: *down,
                    top1: *top1,
                })
                .collect(),
            random: vec![RandomLesion {
                k: 1,
                mean: 0.8,
                std: 0.01,
                range: (0.79, 0.81),
            }],
        }
    }

    #[test]
    fn a_study_deletes_what_can_be_deleted() {
        use burn::tensor::Distribution;
        use cnnzoo_models::{ModelOptions, create_with};
        let device = Device::default();
        let x = Tensor::<4>::random([6, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let test = TestSet {
            batches: vec![(x.clone(), vec![0, 1, 2, 3, 4, 5])],
        };
        for (spec, plain) in [("resnet20", false), ("resnet20:shortcut=none", true)] {
            let arm: crate::analysis::arm::Arm = spec.parse().unwrap();
            let config = create_with(&arm.model, ModelOptions::default(), &arm.overrides).unwrap();
            let net = inference_net(config.init(&device)).unwrap();
            let r = study(spec, &net, &test, 2, Some(3), 7).unwrap();
            assert_eq!(r.single.len(), 9);
            let down: Vec<&str> = r
                .single
                .iter()
                .filter(|s| s.downsampling)
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(down, ["stages.1.0", "stages.2.0"]);
            assert_eq!(
                r.single.iter().filter(|s| s.top1.is_none()).count(),
                if plain { 2 } else { 0 }
            );
            assert_eq!(r.random.len(), 3);
            // Nothing deleted is the plain forward pass.
            let direct = net.forward(x.clone()).argmax(1);
            let lesioned = net
                .forward_lesioned(x.clone(), &[false; 9])
                .unwrap()
                .argmax(1);
            assert_eq!(direct.into_data(), lesioned.into_data());
            // A deleted residual block outputs its shortcut.
            let block = &net.stages[0][1];
            let h = net.stem.forward(x.clone());
            if plain {
                assert!(net.stages[1][0].lesioned(h.clone()).is_none());
                assert!(
                    net.forward_lesioned(
                        x.clone(),
                        &[false, false, false, true, false, false, false, false, false]
                    )
                    .is_err()
                );
            } else {
                let gone = block.lesioned(h.clone()).unwrap();
                let diff: f32 = (gone - h).abs().max().into_scalar();
                assert_eq!(diff, 0.0);
            }
        }
    }

    #[test]
    fn the_report_states_the_measured_drops() {
        let nets = [
            net(
                "resnet",
                0.9,
                &[(false, Some(0.88)), (true, Some(0.5)), (false, Some(0.86))],
            ),
            net(
                "plain",
                0.85,
                &[(false, Some(0.1)), (true, None), (false, Some(0.2))],
            ),
        ];
        let md = report(&nets, 100, 3, "cnnzoo experiment lesion", "lesion.png");
        assert!(md.contains("| stages.0.1 | yes | 50.00 | n/a |"), "{md}");
        assert!(md.contains("mean drop of 3.00 points"), "{md}");
        assert!(md.contains("mean drop of 70.00 points"), "{md}");
        assert!(md.contains("| 1 | 80.00 (1.00, 79.00-81.00) |"), "{md}");
    }
}
