//! `cnnzoo experiment`: the papers' design experiments (plain vs residual depth, shortcut
//! options A/B/C, SE ratio and position), each arm in its own resumable run folder, then a
//! chart and a markdown report of the outcome.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_train::analysis::experiment::{Experiment, plot, report, run as run_experiment};

/// Arguments of `cnnzoo experiment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// degradation (plain20/56 vs resnet20/56), shortcuts (options A/B/C on resnet20) or se
    /// (resnet20 vs seresnet20, reduction ratios 2-32, SE positions).
    experiment: Experiment,
    #[command(flatten)]
    data: super::DataArgs,
    /// Epochs per arm.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Train on this many samples (evenly spaced) per arm.
    #[arg(long)]
    subset: Option<usize>,
    /// Evaluate on this many samples.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (SGD, momentum 0.9, weight decay 5e-4, cosine).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Linear warm-up in epochs (deep plain nets need one at lr 0.1).
    #[arg(long, default_value_t = 1.0)]
    warmup_epochs: f64,
    /// Seed, the same for every arm.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder (default runs/experiment-NAME): one run folder per arm, report.md,
    /// experiment.png, results.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `cnnzoo experiment`; Ctrl-C checkpoints the arm in progress, a rerun continues.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.threads)?;
    args.data.ensure()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/experiment-{}", args.experiment.name())));
    let mut recipe = args.data.train_config("resnet20", out.clone());
    recipe.epochs = args.epochs;
    recipe.train_subset = args.subset;
    recipe.test_subset = args.test_subset;
    recipe.batch_size = args.batch_size;
    recipe.lr = args.lr;
    recipe.warmup_epochs = args.warmup_epochs;
    recipe.seed = args.seed;
    recipe.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let stop = super::common::stop_on_ctrl_c()?;
    let Some(results) = run_experiment(args.experiment, &recipe, &out, device, &stop)? else {
        bail!(
            "interrupted; the arm in progress wrote a checkpoint. Run the same command again to continue."
        );
    };
    let chart = out.join("experiment.png");
    plot(
        &chart,
        &results,
        &format!("{} on {}", args.experiment.name(), args.data.dataset),
    )?;
    let command: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 0 { "cnnzoo".into() } else { a })
        .collect();
    let text = report(
        args.experiment,
        &results,
        &recipe,
        &command.join(" "),
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
