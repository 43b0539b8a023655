//! `cnnzoo experiment`: the papers' design experiments (plain vs residual depth, shortcut
//! options A/B/C, SE ratio and position), each arm in its own resumable run folder, then a
//! chart and a markdown report of the outcome; and the two that examine built networks,
//! ResNeXt's forms and the lesion study (their own files).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_train::analysis::experiment::{Experiment, plot, report, run as run_experiment};

/// Arguments of `cnnzoo experiment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

/// The experiments.
#[derive(clap::Subcommand, Debug)]
enum Which {
    /// plain20/56 vs resnet20/56: the degradation problem and how shortcuts remove it.
    Degradation(super::recipe::TrainArgs),
    /// Shortcut options A, B and C on resnet20.
    Shortcuts(super::recipe::TrainArgs),
    /// resnet20 vs seresnet20, SE reduction ratios 2-32 and SE positions.
    Se(super::recipe::TrainArgs),
    /// ResNeXt's forms (a) split, (b) concat, (c) grouped on the same weights: one function.
    ResnextForms(super::experiment_forms::Args),
    /// Delete residual blocks of trained nets at test time (nets as ensembles of paths).
    Lesion(super::experiment_lesion::Args),
}

/// Runs `cnnzoo experiment`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    match args.which {
        Which::Degradation(a) => run_trained(Experiment::Degradation, a, device),
        Which::Shortcuts(a) => run_trained(Experiment::Shortcuts, a, device),
        Which::Se(a) => run_trained(Experiment::Se, a, device),
        Which::ResnextForms(a) => super::experiment_forms::run(a, device),
        Which::Lesion(a) => super::experiment_lesion::run(a, device),
    }
}

/// Trains the arms of `experiment`; Ctrl-C checkpoints the arm in progress, a rerun continues.
fn run_trained(
    experiment: Experiment,
    args: super::recipe::TrainArgs,
    device: &Device,
) -> Result<String> {
    super::common::set_threads(args.threads)?;
    args.data.ensure()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/experiment-{}", experiment.name())));
    let recipe = args.recipe(out.clone())?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let stop = super::common::stop_on_ctrl_c()?;
    let Some(results) = run_experiment(experiment, &recipe, &out, device, &stop)? else {
        bail!(
            "interrupted; the arm in progress wrote a checkpoint. Run the same command again to continue."
        );
    };
    let chart = out.join("experiment.png");
    plot(
        &chart,
        &results,
        &format!("{} on {}", experiment.name(), args.data.dataset),
    )?;
    let text = report(
        experiment,
        &results,
        &recipe,
        &super::recipe::command_line(),
        "experiment.png",
    );
    let md = out.join("report.md");
    std::fs::write(&md, &text).with_context(|| format!("cannot write {}", md.display()))?;
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    Ok(format!(
        "{text}\nwrote {}, {} and {}\n",
        md.display(),
        chart.display(),
        json.display()
    ))
}
