//! Everything a training run is configured by, serialised into every checkpoint.

use std::path::PathBuf;

use cnnzoo_kernels::Precision;
use cnnzoo_models::Overrides;
use serde::{Deserialize, Serialize};

pub use crate::schedule::ScheduleKind;

/// Which optimiser updates the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (optionally Nesterov) momentum; weight decay added to the gradient (L2).
    Sgd {
        /// Momentum factor.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// AdamW (decoupled weight decay).
    AdamW {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
    },
}

/// A training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Registered model name.
    pub model: String,
    /// Design changes to the registered model (activation, normalisation, shortcut, SE).
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// `fashion-mnist`, `mnist`, `cifar10`, `cifar100` or `folder:PATH`.
    pub dataset: String,
    /// Where the data set's files are.
    pub data_dir: PathBuf,
    /// Run folder: checkpoints, `metrics.jsonl`, `curves.png`.
    pub out: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// No weight decay on BatchNorm parameters and biases.
    pub no_bn_decay: bool,
    /// Learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Linear warm-up, in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Label smoothing (0 = none).
    pub label_smoothing: f64,
    /// Seed of initialisation, order and augmentation.
    pub seed: u64,
    /// Random-crop padding in pixels (`None`: 4 for 32x32 data, 2 for 28x28, 0 otherwise).
    pub pad_crop: Option<usize>,
    /// Random horizontal flips.
    pub hflip: bool,
    /// Train on this many samples only (evenly spaced over the set).
    pub train_subset: Option<usize>,
    /// Evaluate on this many samples only.
    pub test_subset: Option<usize>,
    /// Square input size for ImageFolder data (random-resized crop / center crop).
    pub image_size: usize,
    /// Weights to start from: a timm / torchvision state dict or a cnnzoo `model.bpk`.
    #[serde(default)]
    pub init_weights: Option<PathBuf>,
    /// With `init_weights`: keep the model's own classifier when the class count differs.
    #[serde(default)]
    pub reset_classifier: bool,
    /// The convolutions' arithmetic (mixed precision on GPU backends; f32 on the CPU).
    #[serde(default)]
    pub precision: Precision,
}

impl TrainConfig {
    /// Defaults for `model` on `dataset`: SGD 0.1 with momentum 0.9, wd 5e-4, cosine.
    pub fn new(model: &str, dataset: &str, data_dir: PathBuf, out: PathBuf) -> Self {
        TrainConfig {
            model: model.into(),
            overrides: Overrides::default(),
            dataset: dataset.into(),
            data_dir,
            out,
            epochs: 10,
            batch_size: 128,
            optimizer: OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            lr: 0.1,
            weight_decay: 5e-4,
            no_bn_decay: false,
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            seed: 0,
            pad_crop: None,
            hflip: true,
            train_subset: None,
            test_subset: None,
            image_size: 224,
            init_weights: None,
            reset_classifier: false,
            precision: Precision::F32,
        }
    }

    /// Settings that say only which data (batch 1, no model): for opening a data set outside a
    /// training run, e.g. to time the loader or to see whether files are missing.
    pub fn data_only(dataset: &str, data_dir: PathBuf) -> Self {
        let mut c = TrainConfig::new("", dataset, data_dir, PathBuf::new());
        c.batch_size = 1;
        c
    }

    /// Applies a named recipe. `resnet-cifar`: the ResNet paper's CIFAR recipe (SGD 0.1,
    /// momentum 0.9, wd 1e-4, batch 128, lr / 10 at 50% and 75% of training, 4-px crop + flip).
    pub fn apply_recipe(&mut self, name: &str) -> Result<(), String> {
        match name {
            "resnet-cifar" => {
                self.optimizer = OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                };
                self.lr = 0.1;
                self.weight_decay = 1e-4;
                self.batch_size = 128;
                self.schedule = ScheduleKind::MultiStep {
                    milestones: vec![0.5, 0.75],
                    gamma: 0.1,
                };
                self.warmup_epochs = 0.0;
                self.pad_crop = Some(4);
                self.hflip = true;
                Ok(())
            }
            other => Err(format!("unknown recipe '{other}' (known: resnet-cifar)")),
        }
    }

    /// Checks the numbers make sense; the message names the option and its accepted range
    /// (NaN and infinities are refused everywhere, never silently turned off).
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err("epochs and batch size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate must be positive, got {}", self.lr));
        }
        let within = |name: &str, v: f64, lo: f64, hi: f64, hi_open: bool| {
            let ok = v.is_finite() && v >= lo && if hi_open { v < hi } else { v <= hi };
            if ok {
                Ok(())
            } else {
                let close = if hi_open { ')' } else { ']' };
                Err(format!("{name} must be in [{lo}, {hi}{close}, got {v}"))
            }
        };
        within("label smoothing", self.label_smoothing, 0.0, 1.0, true)?;
        within("weight decay", self.weight_decay, 0.0, 1.0, false)?;
        within(
            "warm-up epochs",
            self.warmup_epochs,
            0.0,
            self.epochs as f64,
            false,
        )?;
        match &self.optimizer {
            OptimizerKind::Sgd { momentum, .. } => within("momentum", *momentum, 0.0, 1.0, true)?,
            OptimizerKind::AdamW { beta1, beta2 } => {
                within("AdamW beta1", f64::from(*beta1), 0.0, 1.0, true)?;
                within("AdamW beta2", f64::from(*beta2), 0.0, 1.0, true)?;
            }
        }
        if let ScheduleKind::MultiStep { milestones, gamma } = &self.schedule {
            for m in milestones {
                within("a milestone (fraction of training)", *m, 0.0, 1.0, false)?;
            }
            within("the milestone factor gamma", *gamma, 0.0, 1.0, false)?;
        }
        if let Some(p) = self.pad_crop {
            within("crop padding (pixels)", p as f64, 0.0, 256.0, false)?;
        }
        within("image size", self.image_size as f64, 1.0, 4096.0, false)?;
        Ok(())
    }
}
