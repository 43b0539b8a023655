//! `cnnzoo logits`: run a preprocessed float32 NCHW batch (`.npy`) through a model in eval
//! mode and write the logits (`.npy`), for scripted comparisons with PyTorch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo_interop::npy::{read_npy, write_npy};
use cnnzoo_models::{FuseBn, ModelOptions, create};

use super::weights::ModelWeights;

/// Arguments of `cnnzoo logits`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    src: ModelWeights,
    /// Input batch: float32, C order, shape [N, C, H, W].
    #[arg(long)]
    input: PathBuf,
    /// Output logits: float32 [N, classes].
    #[arg(long)]
    output: PathBuf,
    /// Classes of the weights (default: the model's).
    #[arg(long)]
    classes: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Fold BatchNorm into the convolutions first.
    #[arg(long)]
    fuse_bn: bool,
}

/// Runs `cnnzoo logits`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let (shape, values) = read_npy(&args.input)?;
    let [n, c, h, w] = shape[..] else {
        bail!(
            "{}: expected a [N, C, H, W] batch, got shape {shape:?}",
            args.input.display()
        );
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: value {i} is {} (the batch must be finite)",
            args.input.display(),
            values[i]
        );
    }
    if shape.contains(&0) {
        bail!(
            "{}: shape {shape:?} has an empty dimension",
            args.input.display()
        );
    }
    let options = ModelOptions {
        num_classes: args.classes,
        in_channels: Some(c),
    };
    let model = create(args.src.arch(), options)?.try_init(device)?;
    model
        .summary([c, h, w])
        .map_err(|e| anyhow::anyhow!("{} cannot take {c}x{h}x{w} inputs: {e}", args.src.model))?;
    let model = args.src.load_into(model)?.valid();
    let model = if args.fuse_bn { model.fuse_bn() } else { model };
    let per = c * h * w;
    let mut logits = Vec::new();
    let mut classes = 0;
    for start in (0..n).step_by(args.batch_size) {
        let b = args.batch_size.min(n - start);
        let chunk = values[start * per..(start + b) * per].to_vec();
        let x = Tensor::<4>::from_data(TensorData::new(chunk, [b, c, h, w]), device);
        let y = model.forward(x);
        classes = y.dims()[1];
        let y: Vec<f32> = y
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Some(v) = y.iter().find(|v| !v.is_finite()) {
            return Err(cnnzoo_train::evaluate::non_finite_logits(*v).into());
        }
        logits.extend(y);
    }
    write_npy(&args.output, &[n, classes], &logits)?;
    Ok(format!(
        "wrote {} ([{n}, {classes}] logits)\n",
        args.output.display()
    ))
}
