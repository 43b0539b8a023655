//! Loading weights for any command: cnnzoo checkpoints (`model.bpk` or a checkpoint folder),
//! timm / torchvision state dicts (`.safetensors`, `.pth`, `.pt`, `.bin`), direct URLs to them
//! and timm's pretrained weights by name from the Hugging Face hub.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use cnnzoo_interop::LoadOptions;
use cnnzoo_interop::hub::Hub;
use cnnzoo_interop::predict::Preprocess;
use cnnzoo_interop::pretrained::{self, Pretrained, PretrainedTag};
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
    /// Registered model name, or a timm pretrained name (`resnet50.a1_in1k`).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub source: WeightSource,
    #[command(flatten)]
    pub flags: LoadFlags,
}

/// Where weights come from (flattened into every command that loads weights).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WeightSource {
    /// Weights: a checkpoint folder (`runs/x/best`), its `model.bpk`, a timm / torchvision
    /// state dict (`.safetensors`, `.pth`, `.pt`, `.bin`), or an http(s) URL to one (cached in
    /// torch.hub's folder, its file name's hash prefix checked).
    #[arg(
        long,
        required_unless_present = "pretrained",
        conflicts_with = "pretrained"
    )]
    pub weights: Option<String>,
    /// timm's pretrained weights for --model from the Hugging Face hub (timm's default tag for
    /// a bare architecture name), cached as huggingface_hub caches them.
    #[arg(long)]
    pub pretrained: bool,
    /// Use cached files only, never the network (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    #[arg(skip)]
    located: OnceLock<Located>,
}

/// The local weights file, and the pretrained tag's files when the weights came from the hub.
#[derive(Debug, Clone)]
pub struct Located {
    /// The file to load.
    pub path: PathBuf,
    /// Hub weights and their preprocessing.
    pub pretrained: Option<Pretrained>,
}

/// The architecture part of a model name (`resnet50.a1_in1k` -> `resnet50`).
pub fn arch(model: &str) -> &str {
    pretrained::split(model).0
}

impl WeightSource {
    /// A source from the three flags, for commands whose weights are optional (train).
    pub fn new(weights: Option<String>, pretrained: bool, offline: bool) -> Self {
        WeightSource {
            weights,
            pretrained,
            offline,
            located: OnceLock::new(),
        }
    }

    /// The weights file for `model`, fetched (once) from the hub or a URL when it is remote.
    pub fn locate(&self, model: &str) -> Result<&Located> {
        if let Some(l) = self.located.get() {
            return Ok(l);
        }
        let mut hub = Hub::from_env();
        hub.offline |= self.offline;
        let located = match (&self.weights, self.pretrained) {
            (Some(w), _) if w.starts_with("http://") || w.starts_with("https://") => Located {
                path: hub.url(w)?,
                pretrained: None,
            },
            (Some(w), _) => Located {
                path: resolve(Path::new(w))?,
                pretrained: None,
            },
            (None, true) => {
                let tag = pretrained::resolve(model)?;
                let p = pretrained::fetch(&hub, tag)?;
                Located {
                    path: p.weights.clone(),
                    pretrained: Some(p),
                }
            }
            (None, false) => bail!("pass --weights FILE or --pretrained"),
        };
        Ok(self.located.get_or_init(|| located))
    }
}

impl ModelWeights {
    /// The architecture (the model name without a pretrained tag).
    pub fn arch(&self) -> &str {
        arch(&self.model)
    }

    /// The pretrained tag the model name gives (`resnet50.a1_in1k`), if it has one.
    pub fn tag(&self) -> Result<Option<&'static PretrainedTag>> {
        if pretrained::split(&self.model).1.is_some() {
            return Ok(Some(pretrained::resolve(&self.model)?));
        }
        Ok(None)
    }

    /// The weights file (downloaded first when remote).
    pub fn file(&self) -> Result<PathBuf> {
        self.tag()?;
        Ok(self.source.locate(&self.model)?.path.clone())
    }

    /// The evaluation transform the weights expect: the hub repository's `pretrained_cfg`, else
    /// the named tag's, else torchvision's for the architecture.
    pub fn preprocess(&self) -> Result<Preprocess> {
        if let Some(p) = &self.source.locate(&self.model)?.pretrained {
            return Ok(p.preprocess.clone());
        }
        Ok(match self.tag()? {
            Some(t) => t.preprocess(),
            None => Preprocess::for_model(self.arch()),
        })
    }

    /// Class names from the hub repository's `config.json`, when it lists them.
    pub fn label_names(&self) -> Result<Option<Vec<String>>> {
        Ok(self
            .source
            .locate(&self.model)?
            .pretrained
            .as_ref()
            .and_then(|p| p.label_names.clone()))
    }

    /// The model to build: a training checkpoint's recorded configuration (design overrides
    /// and class count included), else the registry's with `options`.
    pub fn config(&self, options: ModelOptions) -> Result<ModelConfig> {
        let file = self.file()?;
        match file.parent().filter(|d| d.join("state.json").is_file()) {
            Some(dir) => {
                let run = cnnzoo_train::checkpoint::read_state(dir)?;
                if run.config.model != self.arch() {
                    bail!(
                        "{} is a checkpoint of {}, not {}",
                        file.display(),
                        run.config.model,
                        self.arch()
                    );
                }
                Ok(run.model)
            }
            None => Ok(create(self.arch(), options)?),
        }
    }

    /// Loads these weights into `model` (see [`load`]).
    pub fn load_into(&self, model: Model) -> Result<Model> {
        load(model, &self.file()?, self.arch(), self.flags)
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
        return cnnzoo_train::checkpoint::load_model(model, &file)
            .with_context(|| format!("cannot load weights for {name}"));
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
    /// Square input size for folder:PATH data (default: the size the checkpoint was trained
    /// at, else 224).
    #[arg(long)]
    image_size: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl EvalArgs {
    /// The model name.
    pub fn model(&self) -> &str {
        self.src.arch()
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
        let weights = self.src.file()?;
        // Remote weights live in a download cache: their results go under runs/ instead.
        let remote = self.src.source.pretrained
            || self
                .src
                .source
                .weights
                .as_deref()
                .is_some_and(|w| w.contains("://"));
        let beside = if remote {
            PathBuf::from("runs").join(format!("eval-{}", self.src.model))
        } else {
            weights.parent().map(PathBuf::from).unwrap_or_default()
        };
        let out = self.out.clone().unwrap_or(beside);
        let mut config = self.data.train_config(self.src.arch(), out.clone());
        config.batch_size = self.batch_size;
        config.test_subset = self.subset;
        // A folder-trained checkpoint is evaluated at the size it was trained at.
        let trained = weights
            .parent()
            .filter(|d| d.join("state.json").is_file())
            .map(cnnzoo_train::checkpoint::read_state)
            .transpose()?;
        if let Some(size) = self.image_size.or(trained.map(|run| run.config.image_size)) {
            config.image_size = size;
        }
        let data = cnnzoo_train::data::open(&config)?;
        let model_config = self.src.config(ModelOptions {
            num_classes: Some(data.classes.len()),
            in_channels: Some(data.input[0]),
        })?;
        let model = self.src.load_into(model_config.try_init(device)?)?;
        Ok(Evaluation { data, model, out })
    }
}
