//! The ResNet and SE papers' design experiments (degradation of plain nets, shortcut options,
//! SE ratio and position), one call each: several arms trained with one recipe, each in
//! its own run folder (resumable), then one chart and a markdown report stating the outcome.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use crate::analysis::arm::Arm;
use crate::checkpoint::read_state;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::metrics::EpochMetrics;
use crate::plot::{Labelled, panels};
use crate::trainer::train;

/// Which experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experiment {
    /// Plain vs residual at two depths (the ResNet paper's Figure 6).
    Degradation,
    /// Shortcut options A, B and C on one network.
    Shortcuts,
    /// ResNet vs SE-ResNet, the SE reduction-ratio sweep and the SE integration positions.
    Se,
}

impl std::str::FromStr for Experiment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "degradation" => Ok(Experiment::Degradation),
            "shortcuts" => Ok(Experiment::Shortcuts),
            "se" => Ok(Experiment::Se),
            other => Err(format!(
                "unknown experiment '{other}' (known: degradation, shortcuts, se)"
            )),
        }
    }
}

fn arm(spec: &str) -> Arm {
    spec.parse()
        .unwrap_or_else(|e| unreachable!("built-in arm {spec}: {e}"))
}

impl Experiment {
    /// The arms, in report order.
    pub fn arms(self) -> Vec<Arm> {
        let specs: &[&str] = match self {
            Experiment::Degradation => &["plain20", "plain56", "resnet20", "resnet56"],
            Experiment::Shortcuts => &[
                "resnet20:shortcut=A",
                "resnet20:shortcut=B",
                "resnet20:shortcut=C",
            ],
            // Divisor 1 keeps channels / r exact: with timm's rounding to 8, every r >= 2
            // gives the same 8-wide units on these 16-64 channel networks.
            Experiment::Se => &[
                "resnet20",
                "seresnet20",
                "seresnet20:se_r=2,se_div=1",
                "seresnet20:se_r=4,se_div=1",
                "seresnet20:se_r=8,se_div=1",
                "seresnet20:se_r=16,se_div=1",
                "seresnet20:se_r=32,se_div=1",
                "seresnet20:se_pos=pre",
                "seresnet20:se_pos=post",
                "seresnet20:se_pos=identity",
            ],
        };
        specs.iter().map(|s| arm(s)).collect()
    }

    /// Name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Degradation => "degradation",
            Experiment::Shortcuts => "shortcuts",
            Experiment::Se => "se",
        }
    }
}

/// One trained arm.
#[derive(Debug, Clone, Serialize)]
pub struct ArmResult {
    /// What was trained.
    pub arm: Arm,
    /// Its run folder.
    pub folder: PathBuf,
    /// Trainable parameters (BatchNorm running statistics not counted).
    pub params: usize,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
}

impl ArmResult {
    /// Training error (%) of the last epoch.
    pub fn train_error(&self) -> f64 {
        self.history
            .last()
            .map_or(f64::NAN, |m| 100.0 * (1.0 - m.train_acc))
    }

    /// Test error (%) of the last epoch.
    pub fn test_error(&self) -> f64 {
        self.history
            .last()
            .map_or(f64::NAN, |m| 100.0 * (1.0 - m.test_top1))
    }
}

/// Trains every arm of `experiment` with `recipe` (model, overrides and run folder are set per
/// arm, under `out`). An arm with a checkpoint continues from it; a finished one is read back.
/// Returns `None` when interrupted (the arm in progress has written its checkpoint).
pub fn run(
    experiment: Experiment,
    recipe: &TrainConfig,
    out: &Path,
    device: &Device,
    stop: &AtomicBool,
) -> Result<Option<Vec<ArmResult>>, TrainError> {
    run_arms(
        experiment.name(),
        experiment.arms(),
        recipe,
        out,
        device,
        stop,
    )
}

/// Trains `arms` as [`run`] trains an experiment's (`name` labels the progress lines).
pub fn run_arms(
    name: &str,
    arms: Vec<Arm>,
    recipe: &TrainConfig,
    out: &Path,
    device: &Device,
    stop: &AtomicBool,
) -> Result<Option<Vec<ArmResult>>, TrainError> {
    let mut results = Vec::new();
    for arm in arms {
        let folder = out.join(arm.file_stem());
        let mut config = recipe.clone();
        config.model = arm.model.clone();
        config.overrides = arm.overrides;
        config.out = folder.clone();
        eprintln!("== {name}: {}", arm.label());
        let outcome = train(&config, device, stop, folder.join("last").exists())?;
        if outcome.interrupted {
            return Ok(None);
        }
        let params = cnnzoo_models::summary::count_trainable(
            &read_state(&folder.join("last"))?.model.try_init(device)?,
        ) as usize;
        results.push(ArmResult {
            arm,
            folder,
            params,
            history: outcome.history,
        });
    }
    Ok(Some(results))
}

fn find<'a>(results: &'a [ArmResult], label: &str) -> Option<&'a ArmResult> {
    results.iter().find(|r| r.arm.label() == label)
}

fn yes(b: bool) -> &'static str {
    if b { "**yes**" } else { "**no**" }
}

/// What the experiment shows, in sentences computed from the numbers.
pub fn findings(experiment: Experiment, results: &[ArmResult]) -> Vec<String> {
    let mut out = Vec::new();
    let pair = |a: &str, b: &str| Some((find(results, a)?, find(results, b)?));
    match experiment {
        Experiment::Degradation => {
            if let Some((shallow, deep)) = pair("plain20", "plain56") {
                out.push(format!(
                    "Deeper plain net worse than the shallower one (degradation)? {}: plain56 ends at {:.2}% training error, plain20 at {:.2}% (test error {:.2}% vs {:.2}%).",
                    yes(deep.train_error() > shallow.train_error()),
                    deep.train_error(),
                    shallow.train_error(),
                    deep.test_error(),
                    shallow.test_error()
                ));
            }
            if let Some((shallow, deep)) = pair("resnet20", "resnet56") {
                out.push(format!(
                    "Deeper residual net better than the shallower one? {}: resnet56 ends at {:.2}% training error, resnet20 at {:.2}% (test error {:.2}% vs {:.2}%).",
                    yes(deep.train_error() < shallow.train_error()),
                    deep.train_error(),
                    shallow.train_error(),
                    deep.test_error(),
                    shallow.test_error()
                ));
            }
            if let Some((plain, res)) = pair("plain56", "resnet56") {
                out.push(format!(
                    "At 56 layers the shortcuts lower training error from {:.2}% to {:.2}%.",
                    plain.train_error(),
                    res.train_error()
                ));
            }
        }
        Experiment::Shortcuts | Experiment::Se => {
            if let Some(best) = results
                .iter()
                .min_by(|a, b| a.test_error().total_cmp(&b.test_error()))
            {
                out.push(format!(
                    "Lowest final test error: {} at {:.2}% ({} parameters).",
                    best.arm.label(),
                    best.test_error(),
                    best.params
                ));
            }
            if let Some((base, se)) = pair("resnet20", "seresnet20") {
                out.push(format!(
                    "SE at equal recipe: test error {:.2}% -> {:.2}% for {:+.1}% parameters.",
                    base.test_error(),
                    se.test_error(),
                    100.0 * (se.params as f64 / base.params as f64 - 1.0)
                ));
            }
            if experiment == Experiment::Se {
                se_findings(results, &mut out);
            }
        }
    }
    out
}

/// The reduction-ratio sweep and the integration positions of the SE experiment.
fn se_findings(results: &[ArmResult], out: &mut Vec<String>) {
    let sweep: Vec<(usize, &ArmResult)> = [2, 4, 8, 16, 32]
        .into_iter()
        .filter_map(|r| Some((r, find(results, &format!("seresnet20:se_r={r},se_div=1"))?)))
        .collect();
    let by_error = |a: &&(usize, &ArmResult), b: &&(usize, &ArmResult)| {
        a.1.test_error().total_cmp(&b.1.test_error())
    };
    let mut spread = None;
    if let (Some(best), Some(worst)) =
        (sweep.iter().min_by(by_error), sweep.iter().max_by(by_error))
    {
        let d = worst.1.test_error() - best.1.test_error();
        spread = Some(d);
        out.push(format!(
            "Reduction ratio sweep (exact C/r widths): test error from {:.2}% (r = {}, {} parameters) to {:.2}% (r = {}, {} parameters), a spread of {d:.2} points; the SE units cost {} (r = 32) to {} (r = 2) parameters over resnet20.",
            best.1.test_error(),
            best.0,
            best.1.params,
            worst.1.test_error(),
            worst.0,
            worst.1.params,
            sweep.last().zip(find(results, "resnet20")).map_or(0, |(a, b)| a.1.params.saturating_sub(b.params)),
            sweep.first().zip(find(results, "resnet20")).map_or(0, |(a, b)| a.1.params.saturating_sub(b.params)),
        ));
    }
    let positions: Vec<(&str, &ArmResult)> = [
        ("standard", "seresnet20"),
        ("PRE", "seresnet20:se_pos=pre"),
        ("POST", "seresnet20:se_pos=post"),
        ("identity", "seresnet20:se_pos=identity"),
    ]
    .into_iter()
    .filter_map(|(name, label)| Some((name, find(results, label)?)))
    .collect();
    if positions.len() >= 2 {
        let list: Vec<String> = positions
            .iter()
            .map(|(n, r)| format!("{n} {:.2}%", r.test_error()))
            .collect();
        let worst = positions
            .iter()
            .max_by(|a, b| a.1.test_error().total_cmp(&b.1.test_error()))
            .expect("two positions");
        let paper = if worst.0 == "POST" {
            " As in the SE paper, placing the unit after the addition (POST) is the one that hurts."
        } else {
            " The SE paper found POST (after the addition) the worst; this run does not show that."
        };
        out.push(format!(
            "Integration position, test error: {}; worst: {}.{paper}",
            list.join(", "),
            worst.0
        ));
    }
    if let Some(d) = spread {
        out.push(format!(
            "One seed per arm: differences smaller than the sweep's own spread ({d:.2} points) are not distinguishable in this run; a longer run (`--epochs`, no `--subset`) or more seeds would be needed to rank the ratios."
        ));
    }
}

/// The markdown report: command, recipe, table, findings, chart.
pub fn report(
    experiment: Experiment,
    results: &[ArmResult],
    recipe: &TrainConfig,
    command: &str,
    chart: &str,
) -> String {
    let mut text = format!(
        "# Experiment: {}\n\nCommand: `{command}`\n\nRecipe: {} epochs, batch {}, lr {}, weight decay {}, {:?} schedule, {} training samples{} on {}, seed {}.\n\n",
        experiment.name(),
        recipe.epochs,
        recipe.batch_size,
        recipe.lr,
        recipe.weight_decay,
        recipe.schedule,
        recipe
            .train_subset
            .map_or("all".to_string(), |n| n.to_string()),
        recipe
            .test_subset
            .map_or(String::new(), |n| format!(" ({n} test samples)")),
        recipe.dataset,
        recipe.seed
    );
    text += "| arm | parameters | final train error % | final test error % | best test top-1 % | images/s (last epoch) |\n|---|---:|---:|---:|---:|---:|\n";
    for r in results {
        let best = r
            .history
            .iter()
            .map(|m| m.test_top1)
            .fold(f64::NAN, f64::max);
        text += &format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} |\n",
            r.arm.label(),
            r.params,
            r.train_error(),
            r.test_error(),
            100.0 * best,
            r.history.last().map_or(f64::NAN, |m| m.images_per_sec)
        );
    }
    text += "\n## Findings\n\n";
    for f in findings(experiment, results) {
        text += &format!("- {f}\n");
    }
    text += &format!(
        "\n![training and test error per epoch]({chart})\n\nTraining error is measured on the augmented batches during each epoch (train mode), as in the ResNet paper's curves; test error after each epoch.\n"
    );
    text
}

/// An experiment's arms: training error (left) and test error (right) per epoch.
pub fn plot(path: &Path, results: &[ArmResult], title: &str) -> Result<(), TrainError> {
    let curves = |f: fn(&EpochMetrics) -> f64| -> Vec<Labelled> {
        results
            .iter()
            .map(|r| {
                let points = r
                    .history
                    .iter()
                    .map(|m| (m.epoch as f64, 100.0 * (1.0 - f(m))))
                    .collect();
                (r.arm.label(), points)
            })
            .collect()
    };
    panels(
        path,
        title,
        "epoch",
        &[
            (
                "training error (augmented, train mode)".into(),
                "error (%)",
                curves(|m| m.train_acc),
            ),
            ("test error".into(), "error (%)", curves(|m| m.test_top1)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(label: &str, train_acc: f64, test_top1: f64) -> ArmResult {
        ArmResult {
            arm: label.parse().unwrap(),
            folder: PathBuf::new(),
            params: 1000,
            history: vec![EpochMetrics {
                epoch: 1,
                lr: 0.1,
                train_loss: 0.5,
                train_acc,
                test_loss: 0.5,
                test_top1,
                test_top5: 1.0,
                images_per_sec: 100.0,
                wall_time_s: 1.0,
            }],
        }
    }

    #[test]
    fn every_built_in_arm_parses_and_names_a_registered_model() {
        for e in [
            Experiment::Degradation,
            Experiment::Shortcuts,
            Experiment::Se,
        ] {
            assert_eq!(e.name().parse::<Experiment>().unwrap(), e);
            for arm in e.arms() {
                cnnzoo_models::create_with(
                    &arm.model,
                    cnnzoo_models::ModelOptions::default(),
                    &arm.overrides,
                )
                .unwrap_or_else(|err| panic!("{}: {err}", arm.label()));
            }
        }
        assert!("dropout".parse::<Experiment>().is_err());
    }

    #[test]
    fn degradation_findings_follow_the_numbers() {
        let results = [
            result("plain20", 0.90, 0.88),
            result("plain56", 0.85, 0.84),
            result("resnet20", 0.91, 0.89),
            result("resnet56", 0.93, 0.90),
        ];
        let f = findings(Experiment::Degradation, &results);
        assert!(f[0].contains("**yes**") && f[0].contains("15.00%"), "{f:?}");
        assert!(f[1].contains("**yes**") && f[1].contains("7.00%"), "{f:?}");
        let flipped = [result("plain20", 0.85, 0.84), result("plain56", 0.90, 0.88)];
        let f = findings(Experiment::Degradation, &flipped);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("**no**"), "{f:?}");
    }
}
