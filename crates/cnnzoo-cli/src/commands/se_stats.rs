//! `cnnzoo se-stats`: mean SE excitation per channel and class for every SE block of trained
//! weights (the SE paper's Figure 6), as JSON, a table of class spread and a PNG.

use anyhow::{Context, Result};
use burn::tensor::Device;
use cnnzoo_train::analysis::se_stats;

use super::weights::{EvalArgs, Evaluation};

/// Arguments of `cnnzoo se-stats` (outputs: se_stats.json and se_stats.png).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    eval: EvalArgs,
}

/// Runs `cnnzoo se-stats`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    let Evaluation { data, model, out } = args.eval.prepare(device)?;
    let stats = se_stats::collect(&model, &data.test, &data.classes, device)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("se_stats.json");
    std::fs::write(&json, serde_json::to_string_pretty(&stats)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let png = out.join("se_stats.png");
    se_stats::plot(
        &png,
        &stats,
        &format!(
            "{}: mean excitation per channel and class",
            args.eval.model()
        ),
    )?;
    let mut text = format!(
        "{} on {} ({} images): class spread of the mean excitation per SE block\n(mean over channels of the std across classes; 0 = class-agnostic)\n\n",
        args.eval.model(),
        args.eval.dataset(),
        stats.counts.iter().sum::<u64>()
    );
    for b in &stats.blocks {
        text += &format!("  {:<14} {:.4}\n", b.name, b.class_spread);
    }
    text += &format!("\nwrote {} and {}\n", json.display(), png.display());
    Ok(text)
}
