//! `cnnzoo train`: a training run with progress bar, metrics, curves and checkpoints.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use cnnzoo_train::{OptimizerKind, Precision, ScheduleKind, TrainConfig, train};

/// Arguments of `cnnzoo train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered model name (see `cnnzoo list`).
    #[arg(long)]
    model: String,
    #[command(flatten)]
    design: super::design::DesignFlags,
    #[command(flatten)]
    data: super::DataArgs,
    /// Run folder: checkpoints, metrics.jsonl, curves.png.
    #[arg(long)]
    out: PathBuf,
    /// Named recipe applied before the other options: resnet-cifar.
    #[arg(long)]
    recipe: Option<String>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// The optimiser.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerName>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// SGD momentum.
    #[arg(long)]
    momentum: Option<f64>,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// No weight decay on BatchNorm parameters and biases.
    #[arg(long)]
    no_bn_decay: bool,
    /// The learning-rate schedule (multistep: / 10 at 50% and 75%, or at --milestones).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleName>,
    /// Multistep milestones as fractions of training, comma separated.
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<f64>>,
    /// Linear warm-up in epochs.
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// Label smoothing.
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Seed of initialisation, order and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Random-crop padding in pixels (default 4 for 32x32, 2 for 28x28).
    #[arg(long)]
    pad_crop: Option<usize>,
    /// No horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// Train on this many samples (evenly spaced).
    #[arg(long)]
    subset: Option<usize>,
    /// Evaluate on this many samples.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Square input size for folder:PATH data.
    #[arg(long)]
    image_size: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start from these weights (timm / torchvision state dict, a cnnzoo model.bpk, or an
    /// http(s) URL to one).
    #[arg(long, conflicts_with = "pretrained")]
    weights: Option<String>,
    /// Start from timm's pretrained weights for --model (`resnet50.a1_in1k`, or timm's default
    /// tag for a bare name), from the Hugging Face hub.
    #[arg(long)]
    pretrained: bool,
    /// With --pretrained or a URL: use cached files only, never the network.
    #[arg(long)]
    offline: bool,
    /// With --weights or --pretrained: keep this model's classifier when the class count differs (fine-tuning).
    #[arg(long)]
    reset_classifier: bool,
    /// Convolution arithmetic: f32, or bf16 / f16 mixed precision (f32 weights, f16 with
    /// dynamic loss scaling) on a GPU device.
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

/// `--optimizer`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OptimizerName {
    /// SGD with momentum (Nesterov with --nesterov).
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// `--schedule`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ScheduleName {
    /// The same rate throughout.
    Constant,
    /// Divided by 10 at each milestone.
    Multistep,
    /// Cosine decay to zero.
    Cosine,
}

fn config(a: &Args) -> Result<TrainConfig> {
    let mut c = a
        .data
        .train_config(super::weights::arch(&a.model), a.out.clone());
    c.overrides = a.design.overrides();
    if let Some(r) = &a.recipe {
        c.apply_recipe(r).map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = a.epochs {
        c.epochs = v;
    }
    if let Some(v) = a.batch_size {
        c.batch_size = v;
    }
    let momentum = match &c.optimizer {
        OptimizerKind::Sgd { momentum, .. } => *momentum,
        OptimizerKind::AdamW { .. } => 0.9,
    };
    match a.optimizer {
        None | Some(OptimizerName::Sgd) => {
            if a.optimizer.is_some() || a.momentum.is_some() || a.nesterov {
                c.optimizer = OptimizerKind::Sgd {
                    momentum: a.momentum.unwrap_or(momentum),
                    nesterov: a.nesterov,
                };
            }
        }
        Some(OptimizerName::Adamw) => {
            c.optimizer = OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
            }
        }
    }
    if let Some(v) = a.lr {
        c.lr = v;
    }
    if let Some(v) = a.weight_decay {
        c.weight_decay = v;
    }
    c.no_bn_decay |= a.no_bn_decay;
    match a.schedule {
        None => {}
        Some(ScheduleName::Constant) => c.schedule = ScheduleKind::Constant,
        Some(ScheduleName::Cosine) => c.schedule = ScheduleKind::Cosine,
        Some(ScheduleName::Multistep) => {
            c.schedule = ScheduleKind::MultiStep {
                milestones: vec![0.5, 0.75],
                gamma: 0.1,
            }
        }
    }
    if let Some(m) = &a.milestones {
        match &mut c.schedule {
            ScheduleKind::MultiStep { milestones, .. } => milestones.clone_from(m),
            _ => bail!("--milestones needs --schedule multistep"),
        }
    }
    if let Some(v) = a.warmup_epochs {
        c.warmup_epochs = v;
    }
    if let Some(v) = a.label_smoothing {
        c.label_smoothing = v;
    }
    if let Some(v) = a.seed {
        c.seed = v;
    }
    if a.pad_crop.is_some() {
        c.pad_crop = a.pad_crop;
    }
    c.hflip &= !a.no_flip;
    c.train_subset = a.subset;
    c.test_subset = a.test_subset;
    if a.weights.is_some() || a.pretrained {
        let source = super::weights::WeightSource::new(a.weights.clone(), a.pretrained, a.offline);
        c.init_weights = Some(source.locate(&a.model)?.path.clone());
    }
    c.reset_classifier = a.reset_classifier;
    c.precision = a.precision;
    if let Some(v) = a.image_size {
        c.image_size = v;
    }
    Ok(c)
}

/// Runs `cnnzoo train`; Ctrl-C finishes the batch, writes a checkpoint and exits.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.threads)?;
    args.data.ensure()?;
    let config = config(&args)?;
    let stop = super::common::stop_on_ctrl_c()?;
    let outcome = train(&config, device, &stop, args.resume)?;
    let out = config.out.display();
    Ok(match (outcome.interrupted, outcome.history.last()) {
        (true, _) => format!(
            "interrupted; checkpoint written. Continue with: cnnzoo train ... --out {out} --resume\n"
        ),
        (false, Some(m)) => format!(
            "done: {} epochs, test top-1 {:.2}%; run folder {out} (metrics.jsonl, curves.png, last/, best/)\n",
            m.epoch,
            100.0 * m.test_top1
        ),
        (false, None) => format!("nothing to do: {out} already finished its epochs\n"),
    })
}
