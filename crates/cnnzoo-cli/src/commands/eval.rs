//! `cnnzoo eval`: accuracy, per-class accuracy and confusion matrix of saved weights.

use anyhow::{Context, Result};
use burn::tensor::Device;
use cnnzoo_train::{evaluate::evaluate, plot};

use super::weights::{EvalArgs, Evaluation};

/// Arguments of `cnnzoo eval` (outputs: eval.json and confusion.png).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    eval: EvalArgs,
}

/// Runs `cnnzoo eval`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    let Evaluation { data, model, out } = args.eval.prepare(device)?;
    let report = evaluate(&model, &data.test, &data.classes, device)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("eval.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let png = out.join("confusion.png");
    plot::confusion(&png, &report.confusion, &report.classes)?;
    let mut text = format!(
        "{} on {} ({} samples): loss {:.4}, top-1 {:.2}%, top-5 {:.2}%\n\nper class:\n",
        args.eval.model(),
        args.eval.dataset(),
        report.samples,
        report.loss,
        100.0 * report.top1,
        100.0 * report.top5
    );
    for (name, acc) in report.classes.iter().zip(&report.per_class) {
        text += &format!("  {name:<16} {:6.2}%\n", 100.0 * acc);
    }
    text += "\nconfusion (rows: true, columns: predicted):\n";
    for row in &report.confusion {
        text += &row.iter().map(|c| format!("{c:6}")).collect::<String>();
        text.push('\n');
    }
    text += &format!("\nwrote {} and {}\n", json.display(), png.display());
    Ok(text)
}
