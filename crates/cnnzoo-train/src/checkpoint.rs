//! Checkpoints: model, optimiser state and run state, written atomically.
//!
//! A checkpoint is a folder (`last`, `best`) holding `model.bpk`, `optimizer.bpk` and
//! `state.json`, which records the SHA-256 of the other two. It is written to `NAME.tmp`,
//! flushed, and renamed into place, the previous one kept as `NAME.old` until the rename
//! succeeded, so an interrupted write never leaves a corrupt checkpoint, and a file damaged
//! later is recognised instead of loaded.
//!
//! An epoch's end is one transaction: `last/` is the commit point, and `best/` and
//! `metrics.jsonl` are derived from it by [`finish_epoch_end`], which a resume runs again.

use std::path::{Path, PathBuf};

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::metrics::EpochMetrics;

/// Where the run stands: enough to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// The run's settings.
    pub config: TrainConfig,
    /// The built model's configuration.
    pub model: cnnzoo_models::ModelConfig,
    /// Epoch in progress or next to run (0-based).
    pub epoch: usize,
    /// Batches of that epoch already done.
    pub batch: usize,
    /// Optimiser steps taken (the schedule's position).
    pub step: usize,
    /// Sums of the epoch in progress.
    pub partial: EpochSums,
    /// Metrics of finished epochs.
    pub history: Vec<EpochMetrics>,
    /// Best test top-1 so far.
    pub best_top1: f64,
    /// Class names of the data set.
    pub classes: Vec<String>,
    /// f16 training's loss scaler, where it stands (absent in other precisions).
    #[serde(default)]
    pub loss_scaler: Option<crate::precision::LossScaler>,
    /// SHA-256 of the checkpoint's `model.bpk` and `optimizer.bpk`, by file name (empty in
    /// checkpoints written before checksums).
    #[serde(default)]
    pub checksums: std::collections::BTreeMap<String, String>,
}

/// The running sums of an epoch in progress, from which its training metrics come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "SumsRepr")]
pub struct EpochSums {
    /// Loss times samples, summed over the batches.
    pub loss_sum: f64,
    /// Correctly classified samples.
    pub correct: f64,
    /// Samples seen.
    pub seen: f64,
    /// Seconds spent in training steps.
    pub seconds: f64,
}

impl EpochSums {
    /// Adds one batch: its mean loss, correct count, size and step time.
    pub fn add(&mut self, loss: f64, correct: usize, samples: usize, seconds: f64) {
        self.loss_sum += loss * samples as f64;
        self.correct += correct as f64;
        self.seen += samples as f64;
        self.seconds += seconds;
    }

    /// Mean loss per sample so far.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1.0)
    }

    /// Accuracy so far.
    pub fn accuracy(&self) -> f64 {
        self.correct / self.seen.max(1.0)
    }

    /// Training images per second so far.
    pub fn images_per_sec(&self) -> f64 {
        self.seen / self.seconds.max(1e-9)
    }
}

/// Checkpoints before the sums had names stored them as `[loss_sum, correct, seen, seconds]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SumsRepr {
    Named {
        loss_sum: f64,
        correct: f64,
        seen: f64,
        seconds: f64,
    },
    Array([f64; 4]),
}

impl From<SumsRepr> for EpochSums {
    fn from(r: SumsRepr) -> Self {
        let (loss_sum, correct, seen, seconds) = match r {
            SumsRepr::Named {
                loss_sum,
                correct,
                seen,
                seconds,
            } => (loss_sum, correct, seen, seconds),
            SumsRepr::Array([a, b, c, d]) => (a, b, c, d),
        };
        EpochSums {
            loss_sum,
            correct,
            seen,
            seconds,
        }
    }
}

/// Replaces the checkpoint folder `dir` by what `fill` writes into a fresh temporary folder.
/// The files are flushed to disk before the switch, so a crash or power cut leaves either the
/// old folder or the new one (as `NAME`, or `NAME.old` between the two renames).
pub fn replace_dir(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    fill(&tmp)?;
    sync(&tmp)?;
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| TrainError::file(dir, e))?;
    }
    fault(dir, "save:swap")?;
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::file(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Passes fault-injection point `name` (see [`crate::faults`]); an injected error names `path`.
pub(crate) fn fault(path: &Path, name: &str) -> Result<(), TrainError> {
    crate::faults::point(name).map_err(|e| TrainError::file(path, e))
}

/// Flushes every file of folder `dir`, then the folder itself, to disk.
fn sync(dir: &Path) -> Result<(), TrainError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::file(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| TrainError::file(dir, e))?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| TrainError::file(&path, e))?;
        }
    }
    // A folder cannot be opened for syncing everywhere (Windows); the files are what matter.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The files of a checkpoint folder that carry a checksum in its `state.json`.
pub const CHECKED_FILES: [&str; 2] = ["model.bpk", "optimizer.bpk"];

/// SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String, TrainError> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::file(path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| TrainError::file(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks `file` (a `model.bpk` or `optimizer.bpk`) against the checksum its folder's
/// `state.json` records. Files without a `state.json` beside them, and checkpoints written
/// before checksums existed, cannot be checked: those pass, the latter with a warning.
pub fn verify_file(file: &Path) -> Result<(), TrainError> {
    let Some(dir) = file.parent().filter(|d| d.join("state.json").is_file()) else {
        return Ok(());
    };
    let state = read_state(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(expected) = state.checksums.get(&name) else {
        if state.checksums.is_empty() {
            warn_unchecked(dir);
        }
        return Ok(());
    };
    let found = sha256_file(file)?;
    if &found != expected {
        return Err(TrainError::file(
            file,
            format!(
                "damaged: its SHA-256 is {}..., state.json recorded {}... (overwritten or corrupted since it was saved)",
                &found[..12],
                &expected[..expected.len().min(12)]
            ),
        ));
    }
    Ok(())
}

fn warn_unchecked(dir: &Path) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: {} was written before checkpoints carried checksums; its files cannot be verified (the weights are still checked for NaN)",
            dir.display()
        );
    });
}

/// Checks every checksummed file of checkpoint folder `dir` and returns its run state.
pub fn verify_dir(dir: &Path) -> Result<RunState, TrainError> {
    let state = read_state(dir)?;
    for name in CHECKED_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(TrainError::file(&path, "missing"));
        }
        verify_file(&path)?;
    }
    Ok(state)
}

/// Where a resumed run starts: `last`, else (when an interruption fell between the two renames,
/// or `last` is damaged) `last.old`, `best`, `best.old`, in that order, each verified first. A
/// fallback is announced with what was wrong; training from an earlier epoch reproduces the
/// same later epochs, since every step is seeded.
pub fn find_last(out: &Path) -> Result<PathBuf, TrainError> {
    let mut damaged = Vec::new();
    for name in ["last", "last.old", "best", "best.old"] {
        let dir = out.join(name);
        if !dir.join("state.json").is_file() {
            continue;
        }
        match verify_dir(&dir) {
            Ok(state) => {
                if !damaged.is_empty() {
                    eprintln!(
                        "warning: {}; resuming from {} (epoch {}, batch {}) instead",
                        damaged.join("; "),
                        dir.display(),
                        state.epoch + 1,
                        state.batch
                    );
                }
                return Ok(dir);
            }
            Err(e) => damaged.push(e.to_string()),
        }
    }
    if damaged.is_empty() {
        return Err(TrainError::file(
            out.join("last"),
            "no checkpoint to resume from (expected last/state.json)",
        ));
    }
    Err(TrainError::Invalid(format!(
        "no usable checkpoint in {}: {}",
        out.display(),
        damaged.join("; ")
    )))
}

/// The 1-based epoch whose checkpoint is the best: the first epoch, then each that beat every
/// earlier test top-1.
pub fn best_epoch(history: &[EpochMetrics]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, m) in history.iter().enumerate() {
        if best.is_none_or(|(_, top1)| m.test_top1 > top1) {
            best = Some((i + 1, m.test_top1));
        }
    }
    best.map(|(e, _)| e)
}

/// Completes the end of an epoch once `source` (normally `last/`) holds its checkpoint: makes
/// `best/` a copy of it when this epoch is the best, and rewrites `metrics.jsonl` from the
/// history. Idempotent, so a resume runs it again to finish an epoch end that a crash cut
/// short. A mid-epoch checkpoint needs nothing (its epoch end ran before it was written).
pub fn finish_epoch_end(out: &Path, source: &Path, state: &RunState) -> Result<(), TrainError> {
    if state.batch != 0 {
        return Ok(());
    }
    let best = out.join("best");
    let best_old = out.join("best.old");
    if !best.exists() && best_old.join("state.json").is_file() {
        std::fs::rename(&best_old, &best).map_err(|e| TrainError::file(&best, e))?;
    }
    let epochs = state.history.len();
    if epochs > 0 && best_epoch(&state.history) == Some(epochs) && source != best {
        let holds_it = verify_dir(&best).is_ok_and(|b| b.epoch == state.epoch && b.batch == 0);
        if !holds_it {
            replace_dir(&best, |tmp| {
                for name in ["model.bpk", "optimizer.bpk", "state.json"] {
                    std::fs::copy(source.join(name), tmp.join(name))
                        .map_err(|e| TrainError::file(source.join(name), e))?;
                }
                Ok(())
            })?;
        }
    }
    fault(&best, "epoch-end:best")?;
    let metrics = out.join("metrics.jsonl");
    crate::metrics::write_jsonl(&metrics, &state.history)?;
    fault(&metrics, "epoch-end:metrics")
}

/// Reads a checkpoint's run state.
pub fn read_state(dir: &Path) -> Result<RunState, TrainError> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path).map_err(|e| TrainError::file(&path, e))?;
    parse_state(&bytes).map_err(|e| TrainError::file(&path, e))
}

/// Parses a `state.json` and checks that its numbers agree with one another; the error says
/// what is wrong.
pub fn parse_state(bytes: &[u8]) -> Result<RunState, String> {
    let state: RunState =
        serde_json::from_slice(bytes).map_err(|e| format!("not a cnnzoo run state: {e}"))?;
    state.check()?;
    Ok(state)
}

impl RunState {
    /// Checks what a damaged or hand-edited `state.json` could get wrong: one history entry
    /// per finished epoch, finite non-negative sums, a top-1 in [0, 1], valid settings.
    pub fn check(&self) -> Result<(), String> {
        if self.history.len() != self.epoch {
            return Err(format!(
                "damaged: epoch {} but {} epochs of history",
                self.epoch,
                self.history.len()
            ));
        }
        if self
            .history
            .iter()
            .enumerate()
            .any(|(i, m)| m.epoch != i + 1)
        {
            return Err("damaged: history epochs out of order".into());
        }
        let p = &self.partial;
        if [p.loss_sum, p.correct, p.seen, p.seconds]
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0)
            || p.correct > p.seen
        {
            return Err(format!("damaged: epoch sums {p:?}"));
        }
        if !(0.0..=1.0).contains(&self.best_top1) {
            return Err(format!("damaged: best top-1 {}", self.best_top1));
        }
        if self.step < self.batch {
            return Err(format!(
                "damaged: step {} before batch {}",
                self.step, self.batch
            ));
        }
        self.config.validate()
    }

    /// Checks the position against the data's `batches` per epoch (known once the data is
    /// open): the batch within the epoch and the optimiser step it implies.
    pub fn check_position(&self, batches: usize) -> Result<(), String> {
        let expected = self
            .epoch
            .checked_mul(batches)
            .and_then(|s| s.checked_add(self.batch));
        if self.batch >= batches.max(1) || expected != Some(self.step) {
            return Err(format!(
                "epoch {}, batch {}, step {} does not fit {batches} batches per epoch (another data set, or a damaged state.json)",
                self.epoch, self.batch, self.step
            ));
        }
        Ok(())
    }
}

/// Writes a run state into a checkpoint folder being filled, with the checksums of the
/// folder's weight files (written before it).
pub fn write_state(dir: &Path, state: &RunState) -> Result<(), TrainError> {
    let path = dir.join("state.json");
    let mut state = state.clone();
    state.checksums.clear();
    for name in CHECKED_FILES {
        let file = dir.join(name);
        if file.is_file() {
            state
                .checksums
                .insert(name.to_string(), sha256_file(&file)?);
        }
    }
    let text = serde_json::to_string_pretty(&state).map_err(|e| TrainError::file(&path, e))?;
    fault(&path, "save:state")?;
    std::fs::write(&path, text).map_err(|e| TrainError::file(&path, e))
}

/// Loads a cnnzoo `model.bpk` into `model`: the file checked against its checkpoint's checksum
/// when it has one, then every loaded weight checked (finite, BatchNorm variances
/// non-negative).
pub fn load_model(
    model: cnnzoo_models::Model,
    file: &Path,
) -> Result<cnnzoo_models::Model, TrainError> {
    verify_file(file)?;
    let model = model.try_load_file(file).map_err(|e| {
        TrainError::file(
            file,
            format!("not a cnnzoo checkpoint of this model ({e:?}); a checkpoint of another model, design or class count?"),
        )
    })?;
    cnnzoo_models::check_weights(&model).map_err(|e| TrainError::file(file, e))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::EpochSums;

    #[test]
    fn epoch_sums_read_named_and_the_older_array_form() {
        let sums = EpochSums {
            loss_sum: 12.5,
            correct: 7.0,
            seen: 10.0,
            seconds: 2.0,
        };
        let json = serde_json::to_string(&sums).unwrap();
        assert!(json.contains("\"loss_sum\":12.5"), "{json}");
        assert_eq!(serde_json::from_str::<EpochSums>(&json).unwrap(), sums);
        let old: EpochSums = serde_json::from_str("[12.5, 7.0, 10.0, 2.0]").unwrap();
        assert_eq!(old, sums);
        assert_eq!(
            (sums.loss(), sums.accuracy(), sums.images_per_sec()),
            (1.25, 0.7, 5.0)
        );
        assert!(serde_json::from_str::<EpochSums>("[1.0, 2.0]").is_err());
    }
}
