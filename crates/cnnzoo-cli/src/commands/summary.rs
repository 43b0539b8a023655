//! `cnnzoo summary NAME`: per-layer output shape, parameters and multiply-accumulates.

use anyhow::Result;
use burn::tensor::Device;
use cnnzoo_models::{LayerRow, ModelOptions};
use serde::Serialize;

use super::{build, summarize};
use crate::format::{parse_shape, shape, si, thousands};

/// Arguments of `cnnzoo summary`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered model name (see `cnnzoo list`).
    name: String,
    /// Input as CxHxW (default: the model's own, e.g. 3x224x224); C sets the input channels.
    #[arg(long)]
    input: Option<String>,
    /// Output classes (default: 1000 for ImageNet models, 10 for CIFAR models).
    #[arg(long)]
    classes: Option<usize>,
    /// Merge rows to this many name components (3 shows whole residual blocks).
    #[arg(long)]
    depth: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Model name.
    pub name: String,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output classes.
    pub num_classes: usize,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates for one input.
    pub macs: u64,
    /// Per-layer rows.
    pub layers: Vec<LayerRow>,
}

/// Builds the report for `args`.
pub fn report(args: &Args, device: &Device) -> Result<Report> {
    let spec = cnnzoo_models::spec(&args.name)?;
    let input = match &args.input {
        Some(text) => parse_shape(text)?,
        None => spec.input,
    };
    if args.classes == Some(0) {
        anyhow::bail!("--classes must be at least 1");
    }
    let options = ModelOptions {
        num_classes: args.classes,
        in_channels: Some(input[0]),
    };
    let built = build(&args.name, options, device)?;
    let s = summarize(&built, input)?;
    let layers = match args.depth {
        Some(d) => s.grouped(d),
        None => s.layers.clone(),
    };
    Ok(Report {
        name: spec.name.to_string(),
        input,
        num_classes: args.classes.unwrap_or(spec.num_classes()),
        params: s.params(),
        macs: s.macs(),
        layers,
    })
}

/// Runs `cnnzoo summary` and returns what it prints.
pub fn run(args: Args, device: &Device) -> Result<String> {
    use std::fmt::Write;
    let r = report(&args, device)?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&r)? + "\n");
    }
    let mut out = String::new();
    let width = r
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let rule = "-".repeat(width + 67);
    writeln!(
        out,
        "{:<width$}  {:<17}  {:>14}  {:>12}  {:>14}\n{rule}",
        "layer", "type", "output", "params", "MACs"
    )?;
    for l in &r.layers {
        writeln!(
            out,
            "{:<width$}  {:<17}  {:>14}  {:>12}  {:>14}",
            l.name,
            l.kind,
            shape(&l.output),
            thousands(l.params),
            thousands(l.macs)
        )?;
    }
    writeln!(
        out,
        "{rule}\n{}: input {}, {} classes\nparameters: {} ({})\nmultiply-accumulates: {} ({} MACs)",
        r.name,
        shape(&r.input),
        r.num_classes,
        thousands(r.params),
        si(r.params),
        thousands(r.macs),
        si(r.macs)
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, input: Option<&str>) -> Args {
        Args {
            name: name.into(),
            input: input.map(Into::into),
            classes: None,
            depth: None,
            json: true,
        }
    }

    #[test]
    fn json_report_has_integer_totals_and_layers() {
        let r = report(&args("resnet18", None), &Device::default()).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["name"], "resnet18");
        assert_eq!(v["params"].as_u64(), Some(11_689_512));
        assert!(v["macs"].as_u64().unwrap() > 1_800_000_000);
        assert!(v["layers"].as_array().unwrap().len() > 40);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let d = Device::default();
        let e = report(&args("resnt50", None), &d).unwrap_err().to_string();
        assert!(
            e.contains("unknown model 'resnt50'") && e.contains("resnet50"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            report(&args("inception_v3", Some("3x32x32")), &d).unwrap_err()
        );
        assert!(e.contains("does not fit inception_v3"), "{e}");
        let e = report(&args("resnet18", Some("3by224")), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CxHxW"), "{e}");
    }

    #[test]
    fn input_channels_and_depth_grouping() {
        let mut a = args("resnet20", Some("1x28x28"));
        a.depth = Some(3);
        let r = report(&a, &Device::default()).unwrap();
        assert_eq!(r.input, [1, 28, 28]);
        // stem rows, 9 blocks, head rows; block rows carry the block's total.
        assert!(r.layers.iter().any(|l| l.name == "stages.2.2"));
        assert_eq!(r.layers.iter().map(|l| l.params).sum::<u64>(), r.params);
        assert_eq!(r.layers.last().unwrap().output, vec![10]);
    }
}
