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
    /// Sums of the epoch in progress: loss * samples, correct, samples, seconds.
    pub partial: [f64; 4],
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

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| TrainError::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::file(path, e))
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
