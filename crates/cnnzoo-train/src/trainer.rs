//! The training loop: seeded, resumable to the batch, interruptible, with a progress bar,
//! per-epoch evaluation, metrics, curves and checkpoints.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use cnnzoo_models::{ModelOptions, create_with};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{
    EpochSums, RunState, best_epoch, fault, find_last, finish_epoch_end, load_model, read_state,
    replace_dir, verify_file, write_state,
};
use crate::config::{OptimizerKind, TrainConfig};
use crate::data::{DataPair, open};
use crate::error::TrainError;
use crate::evaluate::{evaluate, score, to_tensors};
use crate::metrics::EpochMetrics;
use crate::precision::{LossScaler, step};
use crate::schedule::Schedule;

static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Draws every lazily initialised weight now (Burn draws them on first use otherwise).
pub(crate) fn draw_weights<M: Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// Loads the starting weights of a fresh run (fine-tuning).
fn start_from(
    model: cnnzoo_models::Model,
    path: &Path,
    config: &TrainConfig,
) -> Result<cnnzoo_models::Model, TrainError> {
    if path.extension().is_some_and(|e| e == "bpk") {
        return load_model(model, path);
    }
    let options = cnnzoo_interop::LoadOptions {
        non_strict: false,
        reset_classifier: config.reset_classifier,
    };
    let (model, report) = cnnzoo_interop::load_file(model, path, options)
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    eprintln!(
        "{}: {} tensors loaded{}",
        path.display(),
        report.loaded,
        if report.reset.is_empty() {
            String::new()
        } else {
            format!(", classifier re-initialised ({})", report.reset.join(", "))
        }
    );
    Ok(model)
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Metrics of every finished epoch.
    pub history: Vec<EpochMetrics>,
    /// True when stopped by an interruption (a checkpoint was written first).
    pub interrupted: bool,
}

pub(crate) fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then_some(config.weight_decay);
    // BatchNorm scale/shift and biases: the same optimiser without decay (last group wins).
    let no_decay = ParamGroup::from_any_predicates(vec![".gamma", ".beta", ".bias"]);
    let split = config.no_bn_decay && decay.is_some();
    match config.optimizer.clone() {
        OptimizerKind::Sgd { momentum, nesterov } => {
            let sgd = |decay: Option<f64>| {
                let m = (momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(momentum)
                        .with_dampening(0.0)
                        .with_nesterov(nesterov)
                });
                SgdConfig::new()
                    .with_weight_decay(decay.map(|d| WeightDecayConfig::new(d as f32)))
                    .with_momentum(m)
                    .build()
            };
            let main = ModuleOptimizer::from(sgd(decay));
            if split {
                main.with_group(no_decay, sgd(None), None)
            } else {
                main
            }
        }
        OptimizerKind::AdamW { beta1, beta2 } => {
            let adamw = |decay: Option<f64>| {
                AdamWConfig::new()
                    .with_beta_1(beta1)
                    .with_beta_2(beta2)
                    .with_weight_decay(decay.unwrap_or(0.0) as f32)
                    .build()
            };
            let main = ModuleOptimizer::from(adamw(decay));
            if split {
                main.with_group(no_decay, adamw(None), None)
            } else {
                main
            }
        }
    }
}

fn save_checkpoint(
    dir: &Path,
    model: &cnnzoo_models::Model,
    optim: &ModuleOptimizer,
    state: &RunState,
) -> Result<(), TrainError> {
    replace_dir(dir, |tmp| {
        let path = tmp.join("model.bpk");
        // `train()` folds the last BatchNorm running-statistics update (kept per thread until
        // the next read) into the values that are saved.
        fault(&path, "save:model")?;
        model
            .clone()
            .train()
            .save_file(&path)
            .map_err(|e| TrainError::file(&path, format!("{e:?}")))?;
        let path = tmp.join("optimizer.bpk");
        fault(&path, "save:optimizer")?;
        optim
            .save(&path)
            .map_err(|e| TrainError::file(&path, format!("{e:?}")))?;
        write_state(tmp, state)
    })
}

/// Seed of the device RNG for one optimiser step (dropout masks), so a resumed run draws the
/// same masks as an uninterrupted one.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (step as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Trains as `config` says, from scratch or (with `resume`) from the run folder's last
/// checkpoint. `stop` is polled after every batch: when set, a checkpoint is written and the
/// run returns with `interrupted`.
pub fn train(
    config: &TrainConfig,
    device: &Device,
    stop: &AtomicBool,
    resume: bool,
) -> Result<Outcome, TrainError> {
    let mut run = Run::prepare(config, device, resume)?;
    while run.state.epoch < run.config.epochs {
        let started = Instant::now();
        let (next, lr) = run.train_epoch(stop)?;
        run = next;
        let Some(lr) = lr else {
            run.checkpoint_last()?;
            return Ok(run.outcome(true));
        };
        run.end_epoch(lr, started)?;
        if stop.load(Ordering::SeqCst) && run.state.epoch < run.config.epochs {
            return Ok(run.outcome(true));
        }
    }
    Ok(run.outcome(false))
}

/// A training run in progress: its settings, data, model, optimizer and where it stands.
struct Run {
    config: TrainConfig,
    device: Device,
    train_device: Device,
    data: DataPair,
    model: cnnzoo_models::Model,
    optim: ModuleOptimizer,
    state: RunState,
    schedule: Schedule,
    loss_fn: CrossEntropyLoss,
    bar_style: ProgressStyle,
}

impl Run {
    /// Checks the request, opens the data, builds the model and optimizer, and (on resume)
    /// loads the last checkpoint into them.
    fn prepare(config: &TrainConfig, device: &Device, resume: bool) -> Result<Run, TrainError> {
        config.validate().map_err(TrainError::Invalid)?;
        crate::precision::check_device(config.precision, device)?;
        // A design that cannot be built is refused before the run folder exists.
        create_with(&config.model, ModelOptions::default(), &config.overrides)?;
        let out = &config.out;
        std::fs::create_dir_all(out).map_err(|e| TrainError::file(out, e))?;
        let previous = if resume { Some(find_last(out)?) } else { None };
        if let Some(dir) = &previous {
            // A crash during the last epoch end left best/ or metrics.jsonl behind: finish it.
            let state = read_state(dir)?;
            finish_epoch_end(out, dir, &state)?;
            crate::plot::curves(
                &out.join("curves.png"),
                &state.history,
                &format!("{} on {}", state.config.model, state.config.dataset),
            )?;
        }
        let resumed = match &previous {
            Some(dir) => Some(resumed_state(dir, config)?),
            None if out.join("last").exists() => {
                return Err(TrainError::Invalid(format!(
                    "{} already holds a run; pass --resume to continue it or choose another --out",
                    out.display()
                )));
            }
            None => None,
        };
        let config = resumed
            .as_ref()
            .map_or_else(|| config.clone(), |s| s.config.clone());
        // A resumed run keeps the precision it was started with.
        crate::precision::check_device(config.precision, device)?;
        let data = open(&config)?;
        let state = match resumed {
            Some(state) => {
                let dir = previous.as_deref().unwrap_or(out);
                state
                    .check_position(data.train.num_batches())
                    .map_err(|e| TrainError::file(dir.join("state.json"), e))?;
                state
            }
            None => fresh_state(&config, &data)?,
        };
        cnnzoo_kernels::set_autocast(config.precision);
        let train_device = device.clone().autodiff();
        let (model, optim) =
            build_model(&config, &state, &data, &train_device, previous.as_deref())?;
        let batches = data.train.num_batches();
        let schedule = Schedule {
            base_lr: config.lr,
            kind: config.schedule.clone(),
            warmup: (config.warmup_epochs * batches as f64).round() as usize,
            total: config.epochs * batches,
        };
        let loss_fn = CrossEntropyLossConfig::new()
            .with_smoothing((config.label_smoothing > 0.0).then_some(config.label_smoothing as f32))
            .init(&train_device);
        let bar_style =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .map_err(|e| TrainError::Invalid(e.to_string()))?
                .progress_chars("=> ");
        Ok(Run {
            config,
            device: device.clone(),
            train_device,
            data,
            model,
            optim,
            state,
            schedule,
            loss_fn,
            bar_style,
        })
    }

    /// Trains the rest of the current epoch. Returns the run and the last learning rate, or
    /// `None` when `stop` was set before the epoch's end (the caller writes the checkpoint).
    /// The run is taken by value so the model is moved through each optimizer step, never
    /// shared (an optimizer updates a parameter in place only when it holds the only copy).
    fn train_epoch(mut self, stop: &AtomicBool) -> Result<(Run, Option<f64>), TrainError> {
        let mut model = self.model;
        let (config, state) = (&self.config, &mut self.state);
        let epoch = state.epoch;
        let batches = self.data.train.num_batches();
        let classes = self.data.classes.len();
        let bar = ProgressBar::new(batches as u64)
            .with_style(self.bar_style.clone())
            .with_prefix(format!("{}/{}", epoch + 1, config.epochs));
        bar.set_position(state.batch as u64);
        let mut lr = self.schedule.lr(state.step);
        let first = state.batch;
        for (b, batch) in self
            .data
            .train
            .epoch(epoch as u64, first)
            .into_iter()
            .enumerate()
        {
            let b = first + b;
            let step_start = Instant::now();
            let batch = batch?;
            let labels = batch.labels.clone();
            let n = labels.len();
            let (x, y) = to_tensors(batch, &self.train_device);
            lr = self.schedule.lr(state.step);
            self.train_device.seed(step_seed(config.seed, state.step));
            let logits = model.forward(x);
            let loss = self.loss_fn.forward(logits.clone(), y);
            let loss_value: f32 = loss
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Invalid(format!("{e:?}")))?[0];
            if !loss_value.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    epoch: epoch + 1,
                    batch: b + 1,
                    value: loss_value,
                });
            }
            let host: Vec<f32> = logits
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Invalid(format!("{e:?}")))?;
            let correct = score(&host, &labels, classes)
                .iter()
                .filter(|s| s.1 == 0)
                .count();
            model = step(model, &mut self.optim, lr, loss, state.loss_scaler.as_mut());
            state.step += 1;
            state.batch = b + 1;
            state.partial.add(
                f64::from(loss_value),
                correct,
                n,
                step_start.elapsed().as_secs_f64(),
            );
            fault(&config.out, "batch")?;
            bar.set_position(state.batch as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                state.partial.loss(),
                100.0 * state.partial.accuracy(),
                state.partial.images_per_sec()
            ));
            if stop.load(Ordering::SeqCst) && state.batch < batches {
                bar.abandon_with_message("interrupted");
                self.model = model;
                return Ok((self, None));
            }
        }
        bar.finish_and_clear();
        self.model = model;
        Ok((self, Some(lr)))
    }

    /// Evaluates, records the epoch's metrics, writes the checkpoints (`last/`, and `best/`
    /// when test top-1 improved), `metrics.jsonl` and `curves.png`.
    fn end_epoch(&mut self, lr: f64, started: Instant) -> Result<(), TrainError> {
        let (config, state) = (&self.config, &mut self.state);
        let report = evaluate(
            &self.model,
            &self.data.test,
            &self.data.classes,
            &self.device,
        )?;
        let sums = state.partial;
        let metrics = EpochMetrics {
            epoch: state.epoch + 1,
            lr,
            train_loss: sums.loss(),
            train_acc: sums.accuracy(),
            test_loss: report.loss,
            test_top1: report.top1,
            test_top5: report.top5,
            images_per_sec: sums.images_per_sec(),
            wall_time_s: started.elapsed().as_secs_f64(),
        };
        eprintln!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} top-1 {:.2}% top-5 {:.2}% | {:.0} img/s",
            metrics.epoch,
            config.epochs,
            metrics.train_loss,
            100.0 * metrics.train_acc,
            metrics.test_loss,
            100.0 * metrics.test_top1,
            100.0 * metrics.test_top5,
            metrics.images_per_sec
        );
        state.history.push(metrics.clone());
        state.epoch += 1;
        state.batch = 0;
        state.partial = EpochSums::default();
        if best_epoch(&state.history) == Some(metrics.epoch) {
            state.best_top1 = metrics.test_top1;
        }
        // last/ commits the epoch; best/ and metrics.jsonl follow from it (again on a resume,
        // should a crash fall in between).
        let out = &config.out;
        let last = out.join("last");
        save_checkpoint(&last, &self.model, &self.optim, state)?;
        fault(&last, "epoch-end:last")?;
        finish_epoch_end(out, &last, state)?;
        crate::plot::curves(
            &out.join("curves.png"),
            &state.history,
            &format!("{} on {}", config.model, config.dataset),
        )
    }

    /// Writes `last/` mid-epoch (an interrupted run).
    fn checkpoint_last(&self) -> Result<(), TrainError> {
        save_checkpoint(
            &self.config.out.join("last"),
            &self.model,
            &self.optim,
            &self.state,
        )
    }

    /// What the run reports back.
    fn outcome(self, interrupted: bool) -> Outcome {
        Outcome {
            history: self.state.history,
            interrupted,
        }
    }
}

/// The last checkpoint's state in `dir`, if it is a run of the same model, design and data:
/// the recipe continues as it was started; the epoch count and where the run and the data are
/// now (folders may have moved) come from `config`.
fn resumed_state(dir: &Path, config: &TrainConfig) -> Result<RunState, TrainError> {
    let state = read_state(dir)?;
    if state.config.model != config.model
        || state.config.dataset != config.dataset
        || state.config.overrides != config.overrides
    {
        let what = |c: &TrainConfig| {
            let design = c.overrides.label();
            if design.is_empty() {
                format!("{} on {}", c.model, c.dataset)
            } else {
                format!("{} ({design}) on {}", c.model, c.dataset)
            }
        };
        return Err(TrainError::Invalid(format!(
            "{} holds a run of {}, not {}",
            dir.display(),
            what(&state.config),
            what(config)
        )));
    }
    let config = TrainConfig {
        epochs: config.epochs,
        out: config.out.clone(),
        data_dir: config.data_dir.clone(),
        ..state.config.clone()
    };
    Ok(RunState { config, ..state })
}

/// The state of a run that starts now.
fn fresh_state(config: &TrainConfig, data: &DataPair) -> Result<RunState, TrainError> {
    Ok(RunState {
        model: create_with(
            &config.model,
            ModelOptions {
                num_classes: Some(data.classes.len()),
                in_channels: Some(data.input[0]),
            },
            &config.overrides,
        )?,
        config: config.clone(),
        epoch: 0,
        batch: 0,
        step: 0,
        partial: EpochSums::default(),
        history: Vec::new(),
        best_top1: 0.0,
        classes: data.classes.clone(),
        loss_scaler: config
            .precision
            .needs_loss_scaling()
            .then(LossScaler::default),

        checksums: std::collections::BTreeMap::new(),
    })
}

/// The model (initialised from the seed, then from `--weights` for a new run or the
/// checkpoint in `previous` for a resumed one) and its optimizer.
fn build_model(
    config: &TrainConfig,
    state: &RunState,
    data: &DataPair,
    train_device: &Device,
    previous: Option<&Path>,
) -> Result<(cnnzoo_models::Model, ModuleOptimizer), TrainError> {
    let mut model = {
        // The device RNG is shared by everything on the device: seed and draw every initial
        // weight at once, alone, so the initialisation depends on the seed only.
        let _alone = INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        train_device.seed(config.seed);
        let model = state.model.try_init(train_device)?;
        // Shapes and memory are checked on the lazy model, before any weight is allocated.
        crate::evaluate::check_input(&model, data.input, data.classes.len())
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", config.model)))?;
        if cnnzoo_kernels::uses_kernels(train_device) {
            let summary = model
                .summary(data.input)
                .map_err(|e| TrainError::Invalid(e.to_string()))?;
            let [c, h, w] = data.input;
            // The largest batch the loader makes: a batch size beyond the data set is harmless.
            let batch = config.batch_size.min(data.train.dataset().len());
            let what = format!(
                "training {} at batch size {batch} on {c}x{h}x{w} images",
                config.model
            );
            crate::memory::check_fits(&summary, batch, true, &what)?;
        }
        draw_weights(&model);
        model
    };
    if let (None, Some(path)) = (previous, &config.init_weights) {
        model = start_from(model, path, config)?;
    }
    let mut optim = optimizer(config);
    if let Some(dir) = previous {
        model = load_model(model, &dir.join("model.bpk"))?;
        let path = dir.join("optimizer.bpk");
        verify_file(&path)?;
        optim = optim
            .load(&path)
            .map_err(|e| TrainError::file(&path, format!("{e:?}")))?;
    }
    Ok((model, optim))
}
