//! `cnnzoo bench`: images/s of a training step or an inference pass, median over timed
//! iterations after a warm-up, with peak memory.

use anyhow::Result;
use burn::tensor::Device;
use cnnzoo_train::Precision;
use cnnzoo_train::bench::{BenchConfig, BenchMode, BenchReport, run as run_bench};

use crate::format::{parse_shape, shape};

/// Arguments of `cnnzoo bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered model name (see `cnnzoo list`).
    #[arg(long)]
    model: String,
    /// train (forward, loss, backward, SGD step) or infer (eval-mode forward).
    #[arg(long, default_value = "train")]
    mode: BenchMode,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Input as CxHxW (default: the model's own).
    #[arg(long)]
    input: Option<String>,
    /// Classes (default: the model's own).
    #[arg(long)]
    classes: Option<usize>,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Fold every BatchNorm into its convolution (inference only).
    #[arg(long)]
    fuse_bn: bool,
    /// Convolution arithmetic: f32, or bf16 / f16 mixed precision on a GPU device.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// Runs `cnnzoo bench`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.threads)?;
    let mut config = BenchConfig::new(&args.model, args.mode, args.batch);
    config.input = args.input.as_deref().map(parse_shape).transpose()?;
    config.classes = args.classes;
    if config.classes == Some(0) {
        anyhow::bail!("--classes must be at least 1");
    }
    config.warmup = args.warmup;
    config.iters = args.iters;
    config.fuse_bn = args.fuse_bn;
    config.precision = args.precision;
    let report = run_bench(&config, device)?;
    Ok(if args.json {
        serde_json::to_string(&report)? + "\n"
    } else {
        text(&report)
    })
}

fn text(r: &BenchReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let device_mem = r
        .peak_device_bytes
        .map(|b| format!(", device memory {:.0} MiB", mib(b)))
        .unwrap_or_default();
    format!(
        "{} {}{} {} batch {} input {} on {} ({} threads): {:.1} images/s median (min {:.1}, max {:.1}, {} iterations), peak RSS {:.0} MiB{device_mem}\n",
        r.model,
        match r.mode {
            BenchMode::Train => "train",
            BenchMode::Infer => "infer",
        },
        if r.fuse_bn { " (BatchNorm folded)" } else { "" },
        r.precision,
        r.batch,
        shape(&r.input),
        r.device,
        r.threads,
        r.images_per_sec,
        r.images_per_sec_min,
        r.images_per_sec_max,
        r.iteration_s.len(),
        mib(r.peak_rss_bytes),
    )
}
