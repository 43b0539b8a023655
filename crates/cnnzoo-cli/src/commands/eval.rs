//! `cnnzoo eval`: accuracy, per-class accuracy and confusion matrix of saved weights.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use cnnzoo_models::ModelOptions;
use cnnzoo_train::{TrainConfig, data, evaluate::evaluate, plot};

/// Arguments of `cnnzoo eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    src: super::weights::ModelWeights,
    /// fashion-mnist, mnist, cifar10, cifar100 or folder:PATH.
    #[arg(long)]
    dataset: String,
    /// Folder holding the data set's files.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Evaluate on this many samples.
    #[arg(long)]
    subset: Option<usize>,
    /// Where to write eval.json and confusion.png (default: beside the weights).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Fetch the data set into --data-dir first if its files are missing.
    #[arg(long)]
    download: bool,
}

/// Runs `cnnzoo eval`.
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
    config.batch_size = args.batch_size;
    config.test_subset = args.subset;
    let data = data::open(&config)?;
    let model_config = args.src.config(ModelOptions {
        num_classes: Some(data.classes.len()),
        in_channels: Some(data.input[0]),
    })?;
    let model = super::weights::load(
        model_config.init(device),
        &weights,
        &args.src.model,
        args.src.flags,
    )?;
    let report = evaluate(&model, &data.test, &data.classes, device)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("eval.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let png = out.join("confusion.png");
    plot::confusion(&png, &report.confusion, &report.classes)?;
    let mut text = format!(
        "{} on {} ({} samples): loss {:.4}, top-1 {:.2}%, top-5 {:.2}%\n\nper class:\n",
        args.src.model,
        args.dataset,
        report.samples,
        report.loss,
        100.0 * report.top1,
        100.0 * report.top5
    );
    for (name, acc) in report.classes.iter().zip(&report.per_class) {
        text += &format!("  {name:<16} {:6.2}%\n", 100.0 * acc);
    }
    text += "\nconfusion (rows: true, columns: predicted):\n";
    for row in &report.confusion {
        text += &row.iter().map(|c| format!("{c:6}")).collect::<String>();
        text.push('\n');
    }
    text += &format!("\nwrote {} and {}\n", json.display(), png.display());
    Ok(text)
}
