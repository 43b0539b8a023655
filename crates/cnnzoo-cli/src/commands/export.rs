//! `cnnzoo export`: write a model's weights as a timm-keyed `.safetensors` file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_models::{ModelConfig, ModelOptions, create};

use super::weights::{LoadFlags, load, resolve};

/// Arguments of `cnnzoo export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered model name (optional with a training checkpoint folder, which records it).
    #[arg(long)]
    model: Option<String>,
    /// A training checkpoint folder (`runs/x/best`), a `model.bpk`, or a state dict.
    #[arg(long)]
    weights: PathBuf,
    /// Classes of the weights (default: the model's, or the checkpoint's).
    #[arg(long)]
    classes: Option<usize>,
    /// Input channels of the weights (default: 3, or the checkpoint's).
    #[arg(long)]
    in_chans: Option<usize>,
    /// Output `.safetensors` file.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    flags: LoadFlags,
}

/// Runs `cnnzoo export`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    if args.out.extension().is_none_or(|e| e != "safetensors") {
        bail!(
            "{}: the output must be a .safetensors file",
            args.out.display()
        );
    }
    let file = resolve(&args.weights)?;
    // A training checkpoint folder records the exact model it trained.
    let state = file
        .parent()
        .map(|d| d.join("state.json"))
        .filter(|p| p.is_file());
    let from_checkpoint = state.is_some() && args.classes.is_none() && args.in_chans.is_none();
    let (name, config): (String, ModelConfig) = if from_checkpoint {
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        let run = cnnzoo_train::checkpoint::read_state(dir)?;
        if let Some(m) = &args.model
            && *m != run.config.model
        {
            bail!(
                "{} is a checkpoint of {}, not {m}",
                file.display(),
                run.config.model
            );
        }
        (run.config.model.clone(), run.model)
    } else if let Some(m) = &args.model {
        let options = ModelOptions {
            num_classes: args.classes,
            in_channels: args.in_chans,
        };
        (m.clone(), create(m, options)?)
    } else {
        bail!("--model is needed unless --weights is a training checkpoint folder")
    };
    let model = load(config.try_init(device)?, &file, &name, args.flags)?;
    let count = cnnzoo_interop::save_timm_safetensors(&model, &args.out)
        .with_context(|| format!("cannot export {name}"))?;
    Ok(format!(
        "wrote {} ({count} tensors, timm key names)\n",
        args.out.display()
    ))
}
