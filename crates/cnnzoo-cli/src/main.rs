//! `cnnzoo`: build, inspect (and, as the project grows, train and deploy) the classic
//! convolutional networks from the command line.

mod commands;
mod device;
mod format;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// The classic CNN family (ResNet, ResNeXt, SE, DenseNet, Inception) in Rust.
#[derive(Parser, Debug)]
#[command(name = "cnnzoo", version, about, propagate_version = true)]
struct Cli {
    /// Compute device: cpu, or vulkan[:N], cuda[:N], libtorch[:N] in a build with that feature.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List registered models, optionally filtered by a shell-style pattern ('seres*').
    List(commands::list::Args),
    /// Per-layer table of a model: output shapes, parameters, multiply-accumulates.
    Summary(commands::summary::Args),
    /// Train a model on a data set (progress bar, metrics, curves, checkpoints, resume).
    Train(Box<commands::train::Args>),
    /// Evaluate weights on a data set: top-1, top-5, per-class accuracy, confusion matrix.
    Eval(commands::eval::Args),
    /// Data-set utilities (loader throughput).
    Data(commands::data::Args),
    /// Top-k ImageNet classes of images (timm preprocessing) with timm / torchvision weights.
    Predict(commands::predict::Args),
    /// Logits of a preprocessed .npy batch, written as .npy (scripted comparisons).
    Logits(commands::logits::Args),
    /// Write a model as an ONNX graph, or its weights as a timm-keyed .safetensors file.
    Export(commands::export::Args),
    /// Images/s of a training step or an inference pass on synthetic batches (median, peak memory).
    Bench(commands::bench::Args),
    /// Per-layer gradient norms and activation statistics of network designs (vanishing gradients).
    Gradflow(commands::gradflow::Args),
    /// Design experiments: degradation, shortcuts, se (trained arms), resnext-forms, lesion.
    Experiment(commands::experiment::Args),
    /// Mean SE excitation per channel and class of trained weights (the SE paper's Figure 6).
    SeStats(commands::se_stats::Args),
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Makes glibc keep freed buffers for reuse instead of handing them back to the kernel.
///
/// A training step frees and reallocates the same activation-sized buffers every time; by
/// default glibc serves those from fresh `mmap`s and unmaps them on free, so every step pays
/// a page fault and a kernel zeroing per 4 KiB. Keeping them in the heap (up to glibc's 32 MiB
/// per-allocation limit, and never trimming) leaves the peak RSS where it was while the
/// process runs.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = device::parse(&cli.device)?;
    let text = match cli.command {
        Command::List(args) => commands::list::run(args, &device)?,
        Command::Summary(args) => commands::summary::run(args, &device)?,
        Command::Train(args) => commands::train::run(*args, &device)?,
        Command::Eval(args) => commands::eval::run(args, &device)?,
        Command::Data(args) => commands::data::run(args)?,
        Command::Predict(args) => commands::predict::run(args, &device)?,
        Command::Logits(args) => commands::logits::run(args, &device)?,
        Command::Export(args) => commands::export::run(args, &device)?,
        Command::Bench(args) => commands::bench::run(args, &device)?,
        Command::Gradflow(args) => commands::gradflow::run(args, &device)?,
        Command::Experiment(args) => commands::experiment::run(args, &device)?,
        Command::SeStats(args) => commands::se_stats::run(args, &device)?,
    };
    emit(&text)
}

/// Writes a command's output; a closed pipe (`cnnzoo list | head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
