//! Gradient flow through a residual (or plain) network: per conv unit, in depth order, the L2
//! norm of the weight gradient, of the gradient with respect to the unit's output, and the
//! output's mean and standard deviation, at initialisation and after some training steps.
//! This turns the vanishing-gradient argument (with sigmoid, no BatchNorm and no shortcuts the
//! gradient shrinks layer by layer on its way to the input) into a measurement.

use std::io::Write;
use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use cnnzoo_models::{Model, ModelOptions, create_with};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::analysis::arm::Arm;
use crate::config::TrainConfig;
use crate::data::open;
use crate::error::TrainError;
use crate::evaluate::to_tensors;
use crate::plot::{Labelled, panels};
use crate::trainer::{draw_weights, optimizer};

/// What to measure, on which data.
#[derive(Debug, Clone)]
pub struct GradflowConfig {
    /// Data set, data folder, batch size, seed, learning rate and optimiser of the steps.
    pub train: TrainConfig,
    /// Training steps between the two measurements.
    pub steps: usize,
}

/// One conv unit's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerStat {
    /// Position in depth order (0 = stem).
    pub index: usize,
    /// Path of the unit (`stem.conv`, `stages.2.8.conv2`, ...).
    pub name: String,
    /// L2 norm of the gradient of the loss with respect to the convolution weight.
    pub weight_grad_norm: f64,
    /// L2 norm of the gradient of the loss with respect to the unit's output.
    pub output_grad_norm: f64,
    /// Mean of the unit's output.
    pub act_mean: f64,
    /// Standard deviation of the unit's output.
    pub act_std: f64,
}

/// All units at one moment of training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Training steps taken before this measurement.
    pub step: usize,
    /// Loss of the measured batch.
    pub loss: f64,
    /// Per unit, in depth order.
    pub layers: Vec<LayerStat>,
}

/// Units averaged at each end of the network for [`Snapshot::ratio`].
pub const ENDS: usize = 3;

impl Snapshot {
    /// Mean weight-gradient norm of the last [`ENDS`] units over that of the first [`ENDS`]:
    /// far above 1 means the gradient vanishes on its way back to the input (infinite when
    /// it underflows to zero).
    pub fn ratio(&self) -> f64 {
        self.ratio_of(|l| l.weight_grad_norm)
    }

    /// The same ratio for the gradient with respect to the units' outputs.
    pub fn output_ratio(&self) -> f64 {
        self.ratio_of(|l| l.output_grad_norm)
    }

    fn ratio_of(&self, f: impl Fn(&LayerStat) -> f64) -> f64 {
        let k = ENDS.min(self.layers.len() / 2).max(1);
        let mean = |s: &[LayerStat]| s.iter().map(&f).sum::<f64>() / s.len() as f64;
        let n = self.layers.len();
        if n == 0 {
            return f64::NAN;
        }
        mean(&self.layers[n - k..]) / mean(&self.layers[..k])
    }
}

/// The measurement of one arm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradflowReport {
    /// What was measured.
    pub arm: Arm,
    /// At initialisation, then after the training steps (absent if training diverged).
    pub snapshots: Vec<Snapshot>,
    /// Why the second snapshot is missing, if it is.
    pub note: Option<String>,
}

fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    let v = t
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Invalid(format!("{e:?}")))?;
    Ok(f64::from(v.first().copied().unwrap_or(f32::NAN)))
}

/// One forward and backward pass on `(x, y)` with a zero-valued probe added to every conv
/// unit's output: the probe's gradient is the gradient with respect to that output.
fn measure(
    model: &Model,
    x: Tensor<4>,
    y: Tensor<1, burn::tensor::Int>,
    step: usize,
) -> Result<Snapshot, TrainError> {
    let Model::ResNet(net) = model else {
        return Err(TrainError::Invalid(
            "gradient flow is measured on the residual family (resnet, resnext, seresnet, plain)"
                .into(),
        ));
    };
    let device = x.device();
    let mut taps = Vec::new();
    let mut stats = Vec::new();
    let logits = net.forward_tapped(x, &mut |name, unit, t| {
        let probe = Tensor::<4>::zeros(t.dims(), &device).require_grad();
        let v = t.clone().detach().reshape([-1]);
        let mean = v.clone().mean();
        let sq = v.powi_scalar(2).mean();
        stats.push((mean, sq));
        taps.push((name.to_string(), probe.clone(), unit.conv.weight.val()));
        t + probe
    });
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, y);
    let loss_value = scalar(loss.clone().detach())?;
    let grads = loss.backward();
    let norm = |g: Option<Tensor<4>>| -> Result<f64, TrainError> {
        match g {
            Some(g) => Ok(scalar(g.powi_scalar(2).sum())?.sqrt()),
            None => Ok(0.0),
        }
    };
    let mut layers = Vec::with_capacity(taps.len());
    for (index, ((name, probe, weight), (mean, sq))) in taps.into_iter().zip(stats).enumerate() {
        let mean = scalar(mean)?;
        let sq = scalar(sq)?;
        layers.push(LayerStat {
            index,
            name,
            weight_grad_norm: norm(weight.grad(&grads))?,
            output_grad_norm: norm(probe.grad(&grads))?,
            act_mean: mean,
            act_std: (sq - mean * mean).max(0.0).sqrt(),
        });
    }
    Ok(Snapshot {
        step,
        loss: loss_value,
        layers,
    })
}

/// Measures `arm` at initialisation and after `config.steps` SGD steps on real batches.
pub fn run(
    arm: &Arm,
    config: &GradflowConfig,
    device: &Device,
) -> Result<GradflowReport, TrainError> {
    let mut train = config.train.clone();
    train.model = arm.model.clone();
    let data = open(&train)?;
    let model_config = create_with(
        &arm.model,
        ModelOptions {
            num_classes: Some(data.classes.len()),
            in_channels: Some(data.input[0]),
        },
        &arm.overrides,
    )?;
    if !matches!(model_config, cnnzoo_models::ModelConfig::ResNet(_)) {
        return Err(TrainError::Invalid(format!(
            "{}: gradient flow is measured on the residual family (resnet, resnext, seresnet, plain)",
            arm.model
        )));
    }
    let device = device.clone().autodiff();
    device.seed(train.seed);
    let mut model = model_config.try_init(&device)?;
    draw_weights(&model);
    let needed = config.steps + 2;
    if data.train.num_batches() < needed {
        return Err(TrainError::Invalid(format!(
            "{} steps need {needed} batches; the training set has {}",
            config.steps,
            data.train.num_batches()
        )));
    }
    let bar = ProgressBar::new(needed as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}")
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_prefix(arm.label());
    let mut batches = data.train.epoch(0, 0).into_iter();
    let mut next = || -> Result<_, TrainError> {
        let batch = batches
            .next()
            .ok_or_else(|| TrainError::Invalid("the loader ended early".into()))??;
        Ok(to_tensors(batch, &device))
    };
    let (x, y) = next()?;
    let mut snapshots = vec![measure(&model, x, y, 0)?];
    bar.inc(1);
    let mut optim = optimizer(&train);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut note = None;
    for step in 0..config.steps {
        let (x, y) = next()?;
        let loss = loss_fn.forward(model.forward(x), y);
        let value = scalar(loss.clone().detach())?;
        if !value.is_finite() {
            note = Some(format!(
                "training diverged at step {} (loss {value})",
                step + 1
            ));
            break;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(train.lr, model, grads);
        bar.inc(1);
    }
    if note.is_none() {
        let (x, y) = next()?;
        snapshots.push(measure(&model, x, y, config.steps)?);
    }
    bar.finish_and_clear();
    Ok(GradflowReport {
        arm: arm.clone(),
        snapshots,
        note,
    })
}

/// Writes a report as CSV: one row per snapshot and unit.
pub fn write_csv(path: &Path, report: &GradflowReport) -> Result<(), TrainError> {
    let mut text =
        String::from("step,index,name,weight_grad_norm,output_grad_norm,act_mean,act_std\n");
    for s in &report.snapshots {
        for l in &s.layers {
            text += &format!(
                "{},{},{},{:e},{:e},{:e},{:e}\n",
                s.step,
                l.index,
                l.name,
                l.weight_grad_norm,
                l.output_grad_norm,
                l.act_mean,
                l.act_std
            );
        }
    }
    let mut f = std::fs::File::create(path).map_err(|e| TrainError::file(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| TrainError::file(path, e))
}

/// Gradient flow: log10 of each conv unit's weight-gradient norm against its depth, one curve
/// per arm; left at initialisation, right after the training steps.
pub fn plot(path: &Path, reports: &[GradflowReport], title: &str) -> Result<(), TrainError> {
    // Zero gradients (complete underflow) have no logarithm and are left out of the curve.
    let curves = |snapshot: usize| -> Vec<Labelled> {
        reports
            .iter()
            .map(|r| {
                let points = r
                    .snapshots
                    .get(snapshot)
                    .map(|s| {
                        s.layers
                            .iter()
                            .filter(|l| l.weight_grad_norm > 0.0 && l.weight_grad_norm.is_finite())
                            .map(|l| (l.index as f64, l.weight_grad_norm.log10()))
                            .collect()
                    })
                    .unwrap_or_default();
                (r.arm.label(), points)
            })
            .collect()
    };
    let steps = reports
        .iter()
        .find_map(|r| r.snapshots.get(1).map(|s| s.step))
        .unwrap_or(0);
    panels(
        path,
        title,
        "conv unit (depth order, 0 = stem)",
        &[
            ("at initialisation".into(), "log10 |dL/dW|", curves(0)),
            (
                format!("after {steps} training steps"),
                "log10 |dL/dW|",
                curves(1),
            ),
        ],
    )
}
