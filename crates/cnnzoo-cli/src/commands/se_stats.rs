//! `cnnzoo se-stats`: mean SE excitation per channel and class for every SE block of trained
//! weights (the SE paper's Figure 6), as JSON, a table of class spread and a PNG.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use cnnzoo_models::ModelOptions;
use cnnzoo_train::{TrainConfig, data, plot, se_stats};

use super::weights::ModelWeights;

/// Arguments of `cnnzoo se-stats`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    src: ModelWeights,
    /// fashion-mnist, mnist, cifar10, cifar100 or folder:PATH (its test / val split is used).
    #[arg(long)]
    dataset: String,
    /// Folder holding the data set's files.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Fetch the data set into --data-dir first if its files are missing.
    #[arg(long)]
    download: bool,
    /// Use this many test images (evenly spaced).
    #[arg(long)]
    subset: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder for se_stats.json and se_stats.png (default: beside the weights).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `cnnzoo se-stats`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::train::set_threads(args.threads)?;
    super::train::ensure_data(&args.dataset, &args.data_dir, args.download)?;
    let weights = super::weights::resolve(&args.src.weights)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| weights.parent().map(PathBuf::from).unwrap_or_default());
    let mut config = TrainConfig::new(
        &args.src.model,
        &args.dataset,
        args.data_dir.clone(),
        out.clone(),
    );
    config.batch_size = args.batch_size.max(1);
    config.test_subset = args.subset;
    let data = data::open(&config)?;
    let model_config = args.src.config(ModelOptions {
        num_classes: Some(data.classes.len()),
        in_channels: Some(data.input[0]),
    })?;
    let model = args.src.load_into(model_config.try_init(device)?)?;
    let stats = se_stats::collect(&model, &data.test, &data.classes, device)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("se_stats.json");
    std::fs::write(&json, serde_json::to_string_pretty(&stats)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let png = out.join("se_stats.png");
    plot::se_stats(
        &png,
        &stats,
        &format!("{}: mean excitation per channel and class", args.src.model),
    )?;
    let mut text = format!(
        "{} on {} ({} images): class spread of the mean excitation per SE block\n(mean over channels of the std across classes; 0 = class-agnostic)\n\n",
        args.src.model,
        args.dataset,
        stats.counts.iter().sum::<u64>()
    );
    for b in &stats.blocks {
        text += &format!("  {:<14} {:.4}\n", b.name, b.class_spread);
    }
    text += &format!("\nwrote {} and {}\n", json.display(), png.display());
    Ok(text)
}
