//! `cnnzoo experiment resnext-forms`: a ResNeXt's grouped bottlenecks rearranged into the
//! paper's forms (a) and (b), run against (c) on the same weights and input.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_models::models::ModelConfig;
use cnnzoo_models::summary::count_trainable;
use cnnzoo_models::{FuseBn, Model, ModelOptions, create};
use cnnzoo_train::analysis::resnext_forms::{report, run as run_forms};

use super::weights::{LoadFlags, ModelWeights, WeightSource};

/// Arguments of `cnnzoo experiment resnext-forms`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A ResNeXt of the registry (resnext*, seresnext*), or a timm pretrained name.
    #[arg(long, default_value = "resnext50_32x4d")]
    model: String,
    /// Weights to rearrange (checkpoint, state dict or URL); default: seeded random weights
    /// with every BatchNorm's scale and shift drawn, so that no path is zero.
    #[arg(long, conflicts_with = "pretrained")]
    weights: Option<String>,
    /// timm's pretrained weights for --model from the Hugging Face hub.
    #[arg(long)]
    pretrained: bool,
    /// Use cached files only, never the network.
    #[arg(long)]
    offline: bool,
    /// Input side (default: the model's).
    #[arg(long)]
    size: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed forward passes per form (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seed of the random weights and the input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder: report.md and results.json.
    #[arg(long, default_value = "runs/experiment-resnext-forms")]
    out: PathBuf,
}

/// Adds U(0.5, 1.5) to every one-dimensional parameter (BatchNorm scales and shifts, biases).
struct Perturb;

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 1 {
            return param;
        }
        param.map(|t| {
            let noise = Tensor::random(t.shape(), Distribution::Uniform(0.5, 1.5), &t.device());
            t + noise
        })
    }
}

/// Runs `cnnzoo experiment resnext-forms`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.threads)?;
    if args.batch == 0 || args.repeats == 0 {
        bail!("--batch and --repeats must be at least 1");
    }
    device.seed(args.seed);
    let spec = cnnzoo_models::spec(&args.model)?;
    let side = args.size.unwrap_or(spec.input[1]);
    let (model, weights_label) = if args.weights.is_some() || args.pretrained {
        let src = ModelWeights {
            model: args.model.clone(),
            source: WeightSource::new(args.weights.clone(), args.pretrained, args.offline),
            flags: LoadFlags::default(),
        };
        let config = src.config(ModelOptions::default())?;
        let model = src.load_into(config.try_init(device)?)?;
        (model, format!("weights {}", src.file()?.display()))
    } else {
        let config = match create(&args.model, ModelOptions::default())? {
            ModelConfig::ResNet(c) => ModelConfig::ResNet(c.with_zero_init_last(false)),
            other => other,
        };
        let model = config.try_init(device)?.map(&mut Perturb);
        (model, format!("seeded random weights, seed {}", args.seed))
    };
    let input = [args.batch, spec.input[0], side, side];
    let macs = model
        .summary([input[1], side, side])
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.model))?
        .macs() as usize;
    let Model::ResNet(net) = model.valid().fuse_bn() else {
        bail!("{} is not a ResNeXt (no grouped bottlenecks)", args.model);
    };
    let params = count_trainable(&net) as usize;
    let result = run_forms(&args.model, &net, params, macs, input, args.repeats)?;
    let text = report(&result, &super::recipe::command_line(), &weights_label);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let md = args.out.join("report.md");
    std::fs::write(&md, &text).with_context(|| format!("cannot write {}", md.display()))?;
    let json = args.out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    Ok(format!(
        "{text}\nwrote {} and {}\n",
        md.display(),
        json.display()
    ))
}
