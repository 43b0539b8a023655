//! `cnnzoo predict`: top-k ImageNet classes of images, preprocessed as the weights expect.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo_interop::predict::{Interpolation, imagenet_classes, softmax};
use cnnzoo_models::{FuseBn, ModelOptions, create};
use serde::Serialize;

use super::weights::ModelWeights;

/// Arguments of `cnnzoo predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    src: ModelWeights,
    /// Images (PNG or JPEG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Crop size (default: the model's pretrained configuration, 224 or 299).
    #[arg(long)]
    size: Option<usize>,
    /// Crop fraction: the shorter side is resized to size / crop_pct first.
    #[arg(long)]
    crop_pct: Option<f64>,
    /// bilinear or bicubic.
    #[arg(long)]
    interpolation: Option<Interpolation>,
    /// Per-channel mean, comma separated (default: ImageNet's).
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, comma separated (default: ImageNet's).
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Fold BatchNorm into the convolutions first.
    #[arg(long)]
    fuse_bn: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Guess {
    index: usize,
    class: String,
    probability: f32,
}

#[derive(Serialize)]
struct Prediction {
    image: PathBuf,
    top: Vec<Guess>,
}

/// Runs `cnnzoo predict`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    let mut pre = args.src.preprocess()?;
    if let Some(v) = args.size {
        pre.size = v;
    }
    if let Some(v) = args.crop_pct {
        pre.crop_pct = v;
    }
    if let Some(v) = args.interpolation {
        pre.interpolation = v;
    }
    for (flag, v) in [("--mean", &args.mean), ("--std", &args.std)] {
        if v.as_ref().is_some_and(|v| v.len() != 3) {
            bail!("{flag} takes three comma-separated values (R,G,B)");
        }
    }
    if let Some(v) = &args.mean {
        if v.iter().any(|m| !m.is_finite()) {
            bail!("--mean values must be finite numbers");
        }
        pre.mean = [v[0], v[1], v[2]];
    }
    if let Some(v) = &args.std {
        if v.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            bail!("--std values must be positive finite numbers");
        }
        pre.std = [v[0], v[1], v[2]];
    }
    let config = create(args.src.arch(), ModelOptions::default())?;
    let model = args.src.load_into(config.try_init(device)?)?.valid();
    let [c, h, w] = [3, pre.size, pre.size];
    model
        .summary([c, h, w])
        .map_err(|e| anyhow::anyhow!("{} cannot take {c}x{h}x{w} inputs: {e}", args.src.arch()))?;
    let model = if args.fuse_bn { model.fuse_bn() } else { model };
    let names: Vec<String> = match args.src.label_names()? {
        Some(names) => names,
        None => imagenet_classes()
            .iter()
            .map(|s| (*s).to_string())
            .collect(),
    };
    let mut out = Vec::new();
    for path in &args.images {
        let pixels = pre.load(path)?;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, pre.size, pre.size]), device);
        let logits: Vec<f32> = model
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
            return Err(cnnzoo_train::evaluate::non_finite_logits(*v).into());
        }
        let probs = softmax(&logits);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
        let top = order
            .into_iter()
            .take(args.top)
            .map(|i| Guess {
                index: i,
                class: if probs.len() == names.len() {
                    names[i].clone()
                } else {
                    format!("class {i}")
                },
                probability: probs[i],
            })
            .collect();
        out.push(Prediction {
            image: path.clone(),
            top,
        });
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&out)? + "\n");
    }
    let mut text = String::new();
    for p in out {
        text += &format!("{}:\n", p.image.display());
        for g in p.top {
            text += &format!(
                "  {:6.2}%  {:4}  {}\n",
                100.0 * g.probability,
                g.index,
                g.class
            );
        }
    }
    Ok(text)
}
