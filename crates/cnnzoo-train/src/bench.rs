//! Throughput of one model on one device: a training step (forward, loss, backward, SGD) or
//! an inference forward pass, timed over synthetic batches after a warm-up.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use cnnzoo_kernels::Precision;
use cnnzoo_models::{FuseBn, ModelOptions, create, spec};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::precision::{LossScaler, step};
use crate::trainer::{draw_weights, optimizer};

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    /// Forward, cross-entropy, backward and an SGD step (momentum 0.9, weight decay 5e-4).
    Train,
    /// Eval-mode forward pass, no gradients.
    Infer,
}

impl std::str::FromStr for BenchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(BenchMode::Train),
            "infer" | "inference" | "eval" => Ok(BenchMode::Infer),
            other => Err(format!("unknown mode '{other}' (expected train or infer)")),
        }
    }
}

/// One benchmark case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Registered model name.
    pub model: String,
    /// Training step or inference.
    pub mode: BenchMode,
    /// Batch size.
    pub batch: usize,
    /// Input `[C, H, W]` (default: the model's).
    pub input: Option<[usize; 3]>,
    /// Classes (default: the model's).
    pub classes: Option<usize>,
    /// Untimed iterations first (allocation, autotuning, caches).
    pub warmup: usize,
    /// Timed iterations.
    pub iters: usize,
    /// Seed of the weights and the synthetic batch.
    pub seed: u64,
    /// Inference with every BatchNorm folded into its convolution.
    pub fuse_bn: bool,
    /// The convolutions' arithmetic (f16 training adds dynamic loss scaling).
    pub precision: Precision,
}

impl BenchConfig {
    /// Defaults: 3 warm-up and 10 timed iterations, the model's input and classes.
    pub fn new(model: &str, mode: BenchMode, batch: usize) -> Self {
        BenchConfig {
            model: model.into(),
            mode,
            batch,
            input: None,
            classes: None,
            warmup: 3,
            iters: 10,
            seed: 0,
            fuse_bn: false,
            precision: Precision::F32,
        }
    }
}

/// What a benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The case.
    pub model: String,
    /// Training step or inference.
    pub mode: BenchMode,
    /// Batch size.
    pub batch: usize,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// The device, as Burn names it.
    pub device: String,
    /// Worker threads of the CPU pool.
    pub threads: usize,
    /// BatchNorm folded into the convolutions.
    pub fuse_bn: bool,
    /// The convolutions' arithmetic.
    #[serde(default)]
    pub precision: Precision,
    /// Median images/s over the timed iterations.
    pub images_per_sec: f64,
    /// Slowest iteration's images/s.
    pub images_per_sec_min: f64,
    /// Fastest iteration's images/s.
    pub images_per_sec_max: f64,
    /// Seconds of every timed iteration, in order.
    pub iteration_s: Vec<f64>,
    /// Peak resident memory of the process (Linux; 0 where unknown).
    pub peak_rss_bytes: u64,
    /// Most device memory the allocator held during the run (GPU backends; absent otherwise).
    pub peak_device_bytes: Option<u64>,
}

/// The process's peak resident set size (`VmHWM`), 0 where the platform does not say.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

fn sync(device: &Device) -> Result<(), TrainError> {
    device
        .sync()
        .map_err(|e| TrainError::Invalid(format!("device error: {e:?}")))
}

/// Runs one benchmark case on `device`, with a progress bar on stderr.
pub fn run(config: &BenchConfig, device: &Device) -> Result<BenchReport, TrainError> {
    let spec = spec(&config.model)?;
    if config.fuse_bn && config.mode == BenchMode::Train {
        return Err(TrainError::Invalid(
            "folded BatchNorm is for inference: use --mode infer with --fuse-bn".into(),
        ));
    }
    if config.batch == 0 || config.iters == 0 {
        return Err(TrainError::Invalid(
            "batch size and timed iterations must be at least 1".into(),
        ));
    }
    crate::precision::check_device(config.precision, device)?;
    cnnzoo_kernels::set_autocast(config.precision);
    let input = config.input.unwrap_or(spec.input);
    let classes = config.classes.unwrap_or(spec.num_classes());
    let model_config = create(
        &config.model,
        ModelOptions {
            num_classes: Some(classes),
            in_channels: Some(input[0]),
        },
    )?;
    let run_device = match config.mode {
        BenchMode::Train => device.clone().autodiff(),
        BenchMode::Infer => device.clone(),
    };
    run_device.seed(config.seed);
    let model = model_config.try_init(&run_device)?;
    let summary = model.summary(input).map_err(|e| {
        TrainError::Invalid(format!(
            "{} cannot take {input:?} inputs: {e}",
            config.model
        ))
    })?;
    if cnnzoo_kernels::uses_kernels(device) {
        let training = config.mode == BenchMode::Train;
        let what = format!(
            "{} {} at batch {} of {}x{}x{}",
            if training { "training" } else { "inference of" },
            config.model,
            config.batch,
            input[0],
            input[1],
            input[2]
        );
        crate::memory::check_fits(&summary, config.batch, training, &what)?;
    }
    draw_weights(&model);
    let [c, h, w] = input;
    let x = Tensor::<4>::random(
        [config.batch, c, h, w],
        Distribution::Normal(0.0, 1.0),
        &run_device,
    );
    let labels: Vec<i64> = (0..config.batch).map(|i| (i % classes) as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [config.batch]), &run_device);

    let total = config.warmup + config.iters;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!(
        "{} {:?} b{}",
        config.model, config.mode, config.batch
    ));
    let mut peak_device = None;
    let note_memory = |peak: &mut Option<u64>| {
        if let Some(u) = run_device.memory_pool_usage() {
            *peak = Some(peak.unwrap_or(0).max(u.bytes_reserved));
        }
    };
    let mut times = Vec::with_capacity(config.iters);
    match config.mode {
        BenchMode::Train => {
            let mut model = model.train();
            let mut optim = optimizer(&TrainConfig::new(
                &config.model,
                "synthetic",
                std::path::PathBuf::default(),
                std::path::PathBuf::default(),
            ));
            let loss_fn = CrossEntropyLossConfig::new().init(&run_device);
            let mut scaler = config
                .precision
                .needs_loss_scaling()
                .then(LossScaler::default);
            for i in 0..total {
                let start = Instant::now();
                let logits = model.forward(x.clone());
                let loss = loss_fn.forward(logits, y.clone());
                model = step(model, &mut optim, 0.01, loss, scaler.as_mut());
                sync(&run_device)?;
                if i >= config.warmup {
                    times.push(start.elapsed().as_secs_f64());
                }
                note_memory(&mut peak_device);
                bar.inc(1);
            }
        }
        BenchMode::Infer => {
            let model = if config.fuse_bn {
                model.valid().fuse_bn()
            } else {
                model.valid()
            };
            for i in 0..total {
                let start = Instant::now();
                let logits = model.forward(x.clone());
                let _ = logits.into_data();
                sync(&run_device)?;
                if i >= config.warmup {
                    times.push(start.elapsed().as_secs_f64());
                }
                note_memory(&mut peak_device);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let mut rates: Vec<f64> = times
        .iter()
        .map(|t| config.batch as f64 / t.max(1e-12))
        .collect();
    rates.sort_by(f64::total_cmp);
    Ok(BenchReport {
        model: spec.name.to_string(),
        mode: config.mode,
        batch: config.batch,
        input,
        device: format!("{device:?}"),
        fuse_bn: config.fuse_bn,
        precision: config.precision,
        threads: rayon::current_num_threads(),
        images_per_sec: median(&rates),
        images_per_sec_min: rates[0],
        images_per_sec_max: rates[rates.len() - 1],
        iteration_s: times,
        peak_rss_bytes: peak_rss_bytes(),
        peak_device_bytes: peak_device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    #[test]
    fn modes_parse_and_unknown_is_named() {
        assert_eq!("TRAIN".parse::<BenchMode>(), Ok(BenchMode::Train));
        assert_eq!("infer".parse::<BenchMode>(), Ok(BenchMode::Infer));
        assert!("fit".parse::<BenchMode>().unwrap_err().contains("'fit'"));
    }

    #[test]
    fn peak_rss_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes() > 1 << 20);
        }
    }
}
