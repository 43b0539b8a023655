//! `cnnzoo export`: write a model as an ONNX graph, or its weights as a timm-keyed
//! `.safetensors` file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_interop::OnnxOptions;
use cnnzoo_interop::onnx::DEFAULT_OPSET;
use cnnzoo_models::{FuseBn, ModelConfig, ModelOptions, create, spec};

use super::weights::{LoadFlags, WeightSource, arch, load};

/// Arguments of `cnnzoo export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered model name or timm pretrained name (optional with a training checkpoint
    /// folder, which records it).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    source: WeightSource,
    /// Classes of the weights (default: the model's, or the checkpoint's).
    #[arg(long)]
    classes: Option<usize>,
    /// Input channels of the weights (default: 3, or the checkpoint's).
    #[arg(long)]
    in_chans: Option<usize>,
    /// Output file: `.onnx` (the inference graph) or `.safetensors` (timm-keyed weights).
    #[arg(long)]
    out: PathBuf,
    /// Output format, when the extension does not say it.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// ONNX operator set (13 to 21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// A fixed batch size in the ONNX graph (default: a dynamic `batch` dimension).
    #[arg(long)]
    batch: Option<usize>,
    /// Input height and width of the ONNX graph (default: the model's, e.g. 224 or 32).
    #[arg(long)]
    input_size: Option<usize>,
    /// Fold each BatchNorm into the convolution before it (fewer operators, same logits).
    #[arg(long)]
    fuse_bn: bool,
    #[command(flatten)]
    flags: LoadFlags,
}

/// What `export` writes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The inference graph with its weights, for ONNX runtimes.
    Onnx,
    /// The weights under timm's key names.
    Safetensors,
}

/// Runs `cnnzoo export`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    let by_extension = match args.out.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Some(Format::Onnx),
        Some("safetensors") => Some(Format::Safetensors),
        _ => None,
    };
    let Some(format) = args.format.or(by_extension) else {
        bail!(
            "{}: name the output .onnx or .safetensors, or pass --format",
            args.out.display()
        );
    };
    if format == Format::Safetensors && (args.fuse_bn || args.batch.is_some()) {
        bail!("--fuse-bn and --batch apply to ONNX exports only");
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "{}: the output folder {} does not exist",
            args.out.display(),
            dir.display()
        );
    }
    if args.source.pretrained && args.model.is_none() {
        bail!("--pretrained needs --model (e.g. resnet50.a1_in1k)");
    }
    let file = args
        .source
        .locate(args.model.as_deref().unwrap_or(""))?
        .path
        .clone();
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
        (arch(m).to_string(), create(arch(m), options)?)
    } else {
        bail!("--model is needed unless --weights is a training checkpoint folder")
    };
    let in_channels = config.in_channels();
    let model = load(config.try_init(device)?, &file, &name, args.flags)?;
    if format == Format::Onnx {
        let size = match args.input_size {
            Some(s) => s,
            None => spec(&name).map(|s| s.input[1])?,
        };
        let model = if args.fuse_bn { model.fuse_bn() } else { model };
        let summary = model.summary([in_channels, size, size]);
        if let Err(e) = summary {
            bail!("a {size}x{size} input does not fit {name}: {e}");
        }
        let options = OnnxOptions {
            opset: args.opset,
            batch: args.batch,
            size: [size, size],
        };
        let count = cnnzoo_interop::save_onnx(&model, &args.out, &options)
            .with_context(|| format!("cannot export {name}"))?;
        let batch = args.batch.map_or("dynamic".to_string(), |b| b.to_string());
        return Ok(format!(
            "wrote {} (ONNX opset {}, {count} operators, input [{batch}, {in_channels}, {size}, {size}])\n",
            args.out.display(),
            args.opset
        ));
    }
    let count = cnnzoo_interop::save_timm_safetensors(&model, &args.out)
        .with_context(|| format!("cannot export {name}"))?;
    Ok(format!(
        "wrote {} ({count} tensors, timm key names)\n",
        args.out.display()
    ))
}
