//! Checkpoints: model, optimiser state and run state, written atomically.
//!
//! A checkpoint is a folder (`last`, `best`) holding `model.bpk`, `optimizer.bpk` and
//! `state.json`. It is written to `NAME.tmp` and renamed into place, the previous one kept as
//! `NAME.old` until the rename succeeded, so an interrupted write never leaves a corrupt
//! checkpoint.

use std::path::{Path, PathBuf};

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
pub fn replace_dir(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    fill(&tmp)?;
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| TrainError::file(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::file(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint folder to resume from in run folder `out`: `last`, or `last.old` when an
/// interruption fell between the two renames.
pub fn find_last(out: &Path) -> Result<PathBuf, TrainError> {
    for name in ["last", "last.old"] {
        let dir = out.join(name);
        if dir.join("state.json").is_file() {
            return Ok(dir);
        }
    }
    Err(TrainError::file(
        out.join("last"),
        "no checkpoint to resume from (expected last/state.json)",
    ))
}

/// Reads a checkpoint's run state.
pub fn read_state(dir: &Path) -> Result<RunState, TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::file(&path, format!("not a cnnzoo run state: {e}")))
}

/// Writes a run state into a checkpoint folder being filled.
pub fn write_state(dir: &Path, state: &RunState) -> Result<(), TrainError> {
    let path = dir.join("state.json");
    let text = serde_json::to_string_pretty(state).map_err(|e| TrainError::file(&path, e))?;
    std::fs::write(&path, text).map_err(|e| TrainError::file(&path, e))
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
