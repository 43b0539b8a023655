//! Loading weights for any command: cnnzoo checkpoints (`model.bpk` or a checkpoint folder)
//! and timm / torchvision state dicts (`.safetensors`, `.pth`, `.pt`, `.bin`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::Module;
use cnnzoo_interop::LoadOptions;
use cnnzoo_models::{Model, ModelConfig, ModelOptions, create};

/// How strictly a foreign state dict must fit (flattened into each command's arguments).
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct LoadFlags {
    /// Load the tensors that match and list the rest instead of failing.
    #[arg(long)]
    pub non_strict: bool,
    /// Keep this model's own classifier when the file's has another class count (fine-tuning).
    #[arg(long)]
    pub reset_classifier: bool,
}

/// A registered model and the weights to load into it (the arguments eval, logits and predict
/// share).
#[derive(clap::Args, Debug, Clone)]
pub struct ModelWeights {
    /// Registered model name.
    #[arg(long)]
    pub model: String,
    /// Weights: a checkpoint folder (`runs/x/best`), its `model.bpk`, or a timm / torchvision
    /// state dict (`.safetensors`, `.pth`, `.pt`, `.bin`).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub flags: LoadFlags,
}

impl ModelWeights {
    /// The model to build: a training checkpoint's recorded configuration (design overrides
    /// and class count included), else the registry's with `options`.
    pub fn config(&self, options: ModelOptions) -> Result<ModelConfig> {
        let file = resolve(&self.weights)?;
        match file.parent().filter(|d| d.join("state.json").is_file()) {
            Some(dir) => {
                let run = cnnzoo_train::checkpoint::read_state(dir)?;
                if run.config.model != self.model {
                    bail!(
                        "{} is a checkpoint of {}, not {}",
                        file.display(),
                        run.config.model,
                        self.model
                    );
                }
                Ok(run.model)
            }
            None => Ok(create(&self.model, options)?),
        }
    }

    /// Loads these weights into `model` (see [`load`]).
    pub fn load_into(&self, model: Model) -> Result<Model> {
        load(model, &self.weights, &self.model, self.flags)
    }
}

/// The file a `--weights` value names: a checkpoint folder means its `model.bpk`.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let file = if path.is_dir() {
        path.join("model.bpk")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        bail!("{}: weights file not found", file.display());
    }
    Ok(file)
}

/// Loads `path` into `model`, by format: Burn's `.bpk` records, else a PyTorch-world state dict
/// through the key mapping tables. What did not fit in non-strict mode goes to stderr.
pub fn load(model: Model, path: &Path, name: &str, flags: LoadFlags) -> Result<Model> {
    let file = resolve(path)?;
    if file.extension().is_some_and(|e| e == "bpk") {
        return model.try_load_file(&file).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a cnnzoo checkpoint of {name} ({e:?}); a checkpoint of another model or class count?",
                file.display()
            )
        });
    }
    let options = LoadOptions {
        non_strict: flags.non_strict,
        reset_classifier: flags.reset_classifier,
    };
    let (model, report) = cnnzoo_interop::load_state_dict(
        model,
        cnnzoo_interop::state_dict::read(&file)?,
        &file,
        name,
        options,
    )?;
    eprintln!("{}: loaded {} tensors", file.display(), report.loaded);
    if report.dropped_aux > 0 {
        eprintln!(
            "  {} auxiliary-classifier tensors dropped (the model has no auxiliary heads)",
            report.dropped_aux
        );
    }
    if !report.reset.is_empty() {
        eprintln!(
            "  classifier kept from initialisation: {}",
            report.reset.join(", ")
        );
    }
    if !report.mismatch.is_empty() {
        eprint!("  not loaded (--non-strict):\n{}", report.mismatch);
    }
    Ok(model)
}

/// Data, and a model with its weights loaded, for the commands that evaluate weights.
pub struct Evaluation {
    /// The data set (its test split is the one evaluated).
    pub data: cnnzoo_train::data::DataPair,
    /// The model, weights loaded.
    pub model: Model,
    /// Where outputs go: `--out`, or the weights' folder.
    pub out: PathBuf,
}

/// What a command that evaluates weights on a data set's test split takes (flattened).
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    src: ModelWeights,
    #[command(flatten)]
    data: super::DataArgs,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Use this many test samples (evenly spaced).
    #[arg(long)]
    subset: Option<usize>,
    /// Output folder (default: beside the weights).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl EvalArgs {
    /// The model name.
    pub fn model(&self) -> &str {
        &self.src.model
    }

    /// The data set name.
    pub fn dataset(&self) -> &str {
        &self.data.dataset
    }

    /// Sizes the thread pool, opens the data (test split limited to `--subset`), builds the
    /// model the weights need and loads them.
    pub fn prepare(&self, device: &burn::tensor::Device) -> Result<Evaluation> {
        super::common::set_threads(self.threads)?;
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        self.data.ensure()?;
        let weights = resolve(&self.src.weights)?;
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| weights.parent().map(PathBuf::from).unwrap_or_default());
        let mut config = self.data.train_config(&self.src.model, out.clone());
        config.batch_size = self.batch_size;
        config.test_subset = self.subset;
        let data = cnnzoo_train::data::open(&config)?;
        let model_config = self.src.config(ModelOptions {
            num_classes: Some(data.classes.len()),
            in_channels: Some(data.input[0]),
        })?;
        let model = self.src.load_into(model_config.try_init(device)?)?;
        Ok(Evaluation { data, model, out })
    }
}
