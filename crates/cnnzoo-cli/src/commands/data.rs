//! `cnnzoo data`: data-set utilities.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use cnnzoo_train::{TrainConfig, data};

/// Arguments of `cnnzoo data`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DataCommand {
    /// Fetch mnist, fashion-mnist, cifar10 or cifar100 from the official addresses, verify
    /// the published checksums and unpack.
    Download(DownloadArgs),
    /// Images per second of the training loader alone (decode, augment, batch, prefetch).
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
struct DownloadArgs {
    /// mnist, fashion-mnist, cifar10 or cifar100.
    name: String,
    /// Target folder (then pass it as --data-dir).
    #[arg(long, default_value = "data")]
    dir: PathBuf,
}

/// Downloads a data set with a progress bar per file.
pub fn download(name: &str, dir: &std::path::Path) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )?
    .progress_chars("=> ");
    let mut bar: Option<(String, ProgressBar)> = None;
    cnnzoo_data::download::download(name, dir, |file, got, total| {
        if bar.as_ref().is_none_or(|(f, _)| f != file) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total)
                .with_style(style.clone())
                .with_message(file.to_string());
            bar = Some((file.to_string(), b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(got);
        }
    })?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// fashion-mnist, mnist, cifar10, cifar100 or folder:PATH.
    #[arg(long)]
    dataset: String,
    /// Folder holding the data set's files.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Epochs to time (each a full pass over the training set).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `cnnzoo data ...`.
pub fn run(args: Args) -> Result<String> {
    match args.command {
        DataCommand::Download(a) => {
            download(&a.name, &a.dir)?;
            Ok(format!(
                "{} is in {} (use --data-dir {})\n",
                a.name,
                a.dir.display(),
                a.dir.display()
            ))
        }
        DataCommand::Bench(a) => {
            super::train::set_threads(a.threads)?;
            let mut config = TrainConfig::new("resnet20", &a.dataset, a.data_dir, PathBuf::new());
            config.batch_size = a.batch_size;
            let pair = data::open(&config)?;
            let start = Instant::now();
            let mut images = 0usize;
            for epoch in 0..a.epochs.max(1) {
                for batch in pair.train.epoch(epoch as u64, 0) {
                    images += batch?.labels.len();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            Ok(format!(
                "{}: {images} training images (augmented, batch {}) in {secs:.2} s: {:.0} images/s\n",
                a.dataset,
                a.batch_size,
                images as f64 / secs
            ))
        }
    }
}
