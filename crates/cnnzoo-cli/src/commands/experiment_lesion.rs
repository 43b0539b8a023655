//! `cnnzoo experiment lesion`: residual blocks of trained networks deleted at test time, one
//! at a time and k at random, for a residual net and (when given or trained) its plain twin.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use cnnzoo_models::ModelOptions;
use cnnzoo_train::analysis::arm::Arm;
use cnnzoo_train::analysis::experiment::run_arms;
use cnnzoo_train::analysis::lesion::{TestSet, inference_net, plot, report, study};

use super::recipe::{TrainArgs, command_line};
use super::weights::{LoadFlags, ModelWeights, WeightSource};

/// Arguments of `cnnzoo experiment lesion`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The residual network (any of the residual family).
    #[arg(long, default_value = "resnet56")]
    model: String,
    /// Trained weights of --model (a checkpoint folder or file, or a state dict).
    #[arg(long, required_unless_present = "train", conflicts_with = "train")]
    weights: Option<String>,
    /// Trained weights of its plain twin (--model with shortcut=none), studied alongside.
    #[arg(long, conflicts_with = "train")]
    plain_weights: Option<String>,
    /// First train --model and its plain twin with the recipe below (resumable run folders
    /// under --out), then study their best checkpoints.
    #[arg(long)]
    train: bool,
    /// Random draws per number of deleted blocks.
    #[arg(long, default_value_t = 5)]
    draws: usize,
    /// Delete at most this many random blocks (default: every non-downsampling block).
    #[arg(long)]
    max_k: Option<usize>,
    #[command(flatten)]
    recipe: TrainArgs,
}

/// Runs `cnnzoo experiment lesion`.
pub fn run(args: Args, device: &Device) -> Result<String> {
    super::common::set_threads(args.recipe.threads)?;
    if args.draws == 0 {
        bail!("--draws must be at least 1");
    }
    args.recipe.data.ensure()?;
    let out = args
        .recipe
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/experiment-lesion"));
    let residual: Arm = args.model.parse().map_err(anyhow::Error::msg)?;
    let plain: Arm = format!("{}:shortcut=none", args.model)
        .parse()
        .map_err(anyhow::Error::msg)?;
    let recipe = args.recipe.recipe(out.clone())?;
    let mut nets: Vec<(String, String)> = Vec::new();
    if args.train {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let stop = super::common::stop_on_ctrl_c()?;
        let Some(results) = run_arms(
            "lesion",
            vec![residual.clone(), plain.clone()],
            &recipe,
            &out,
            device,
            &stop,
        )?
        else {
            bail!(
                "interrupted; the arm in progress wrote a checkpoint. Run the same command again to continue."
            );
        };
        for r in results {
            nets.push((r.arm.label(), r.folder.join("best").display().to_string()));
        }
    } else {
        let weights = args.weights.clone().expect("required without --train");
        nets.push((residual.label(), weights));
        if let Some(w) = &args.plain_weights {
            nets.push((plain.label(), w.clone()));
        }
    }
    let mut config = args.recipe.data.train_config(&residual.model, out.clone());
    config.batch_size = recipe.batch_size;
    config.test_subset = recipe.test_subset;
    let data = cnnzoo_train::data::open(&config)?;
    let device = device.clone().without_autodiff();
    let test = TestSet::load(&data.test, &device)?;
    let mut studies = Vec::new();
    for (label, weights) in &nets {
        let src = ModelWeights {
            model: residual.model.clone(),
            source: WeightSource::new(Some(weights.clone()), false, false),
            flags: LoadFlags::default(),
        };
        let model_config = src.config(ModelOptions {
            num_classes: Some(data.classes.len()),
            in_channels: Some(data.input[0]),
        })?;
        let model = src.load_into(model_config.try_init(&device)?)?;
        let net = inference_net(model)?;
        eprintln!("== lesion: {label} ({weights})");
        studies.push(study(
            label,
            &net,
            &test,
            args.draws,
            args.max_k,
            recipe.seed,
        )?);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let chart = out.join("lesion.png");
    plot(
        &chart,
        &studies,
        &format!("lesion study on {}", args.recipe.data.dataset),
    )?;
    let text = report(
        &studies,
        test.len(),
        args.draws,
        &command_line(),
        "lesion.png",
    );
    let md = out.join("report.md");
    std::fs::write(&md, &text).with_context(|| format!("cannot write {}", md.display()))?;
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&studies)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    Ok(format!(
        "{text}\nwrote {}, {} and {}\n",
        md.display(),
        chart.display(),
        json.display()
    ))
}
