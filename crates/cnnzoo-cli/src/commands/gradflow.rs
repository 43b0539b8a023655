//! `cnnzoo gradflow`: per-layer gradient norms and activation statistics of one or more
//! network designs, at initialisation and after a few training steps, as CSV, JSON and a PNG.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_train::Arm;
use cnnzoo_train::analysis::gradflow::{
    ENDS, GradflowConfig, GradflowReport, plot, run as measure, write_csv,
};

use super::design::DesignFlags;

/// Arguments of `cnnzoo gradflow`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registered residual-family model (with the override flags below: one arm).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    design: DesignFlags,
    /// More arms to compare, as MODEL[:key=value,...] with keys act, norm, shortcut, se_r,
    /// se_pos, se_div (e.g. plain56:act=sigmoid,norm=none). Repeatable.
    #[arg(long = "arm")]
    arms: Vec<String>,
    #[command(flatten)]
    data: super::DataArgs,
    /// Training steps between the two measurements.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Learning rate of the SGD steps (momentum 0.9, weight decay 5e-4).
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Seed of initialisation and batch order (the same for every arm).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder: one CSV per arm, gradflow.json, gradflow.png.
    #[arg(long, default_value = "runs/gradflow")]
    out: PathBuf,
}

impl Args {
    fn arms(&self) -> Result<Vec<Arm>> {
        let overrides = self.design.overrides();
        let mut arms = Vec::new();
        match &self.model {
            Some(model) => arms.push(Arm {
                model: model.clone(),
                overrides,
            }),
            None if !overrides.is_empty() => {
                bail!("--act, --norm, --shortcut and --se-* apply to --model; give --model too")
            }
            None => {}
        }
        for spec in &self.arms {
            arms.push(
                spec.parse()
                    .map_err(|e| anyhow::anyhow!("--arm {spec}: {e}"))?,
            );
        }
        if arms.is_empty() {
            bail!("nothing to measure: give --model NAME and/or --arm MODEL[:key=value,...]");
        }
        Ok(arms)
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2e}")
    } else if r.is_infinite() {
        // The first units' gradient underflowed to exactly zero in f32.
        "inf".into()
    } else {
        "n/a".into()
    }
}

/// Runs `cnnzoo gradflow`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.threads)?;
    let arms = args.arms()?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    args.data.ensure()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut train = args.data.train_config(&arms[0].model, args.out.clone());
    train.batch_size = args.batch_size;
    train.lr = args.lr;
    train.seed = args.seed;
    train.validate().map_err(anyhow::Error::msg)?;
    let config = GradflowConfig {
        train,
        steps: args.steps,
    };
    let mut reports: Vec<GradflowReport> = Vec::new();
    let mut text = format!(
        "gradient flow on {} (batch {}, {} SGD steps at lr {}); ratio = mean |dL/dW| of the last {ENDS} conv units / first {ENDS} (1: no vanishing)\n\n",
        args.data.dataset, args.batch_size, args.steps, args.lr
    );
    text += &format!(
        "{:<40} {:>14} {:>14} {:>16}\n",
        "arm", "ratio at init", "ratio after", "dL/dout ratio"
    );
    for arm in &arms {
        let report = measure(arm, &config, device)?;
        let csv = args.out.join(format!("{}.csv", arm.file_stem()));
        write_csv(&csv, &report)?;
        let init = &report.snapshots[0];
        let after = report
            .snapshots
            .get(1)
            .map_or_else(|| "diverged".into(), |s| fmt_ratio(s.ratio()));
        let line = format!(
            "{:<40} {:>14} {:>14} {:>16}\n",
            arm.label(),
            fmt_ratio(init.ratio()),
            after,
            fmt_ratio(init.output_ratio())
        );
        eprint!("{line}");
        text += &line;
        if let Some(note) = &report.note {
            text += &format!("  {}: {note}\n", arm.label());
        }
        reports.push(report);
        // Written after every arm so an interrupted comparison keeps what it measured.
        let json = args.out.join("gradflow.json");
        std::fs::write(&json, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("cannot write {}", json.display()))?;
    }
    let png = args.out.join("gradflow.png");
    plot(
        &png,
        &reports,
        &format!("weight-gradient norm per conv unit ({})", args.data.dataset),
    )?;
    text += &format!(
        "\nwrote {} (one CSV per arm, gradflow.json, gradflow.png)\n",
        args.out.display()
    );
    Ok(text)
}
