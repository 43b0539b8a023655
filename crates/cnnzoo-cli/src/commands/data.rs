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

#[derive(clap::Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    data: super::DataArgs,
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
            super::common::download(&a.name, &a.dir)?;
            Ok(format!(
                "{} is in {} (use --data-dir {})\n",
                a.name,
                a.dir.display(),
                a.dir.display()
            ))
        }
        DataCommand::Bench(a) => {
            super::common::set_threads(a.threads)?;
            a.data.ensure()?;
            let mut config = TrainConfig::data_only(&a.data.dataset, a.data.data_dir.clone());
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
                a.data.dataset,
                a.batch_size,
                images as f64 / secs
            ))
        }
    }
}
