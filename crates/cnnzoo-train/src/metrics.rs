//! Per-epoch metrics: one JSON line per epoch in `metrics.jsonl`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::files::write_atomic;

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (augmented batches, train mode).
    pub train_acc: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Test top-1 accuracy.
    pub test_top1: f64,
    /// Test top-5 accuracy.
    pub test_top5: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Wall time of the epoch (training and evaluation), seconds.
    pub wall_time_s: f64,
}

/// Rewrites `metrics.jsonl` from the run's history (atomically, so it always matches the
/// checkpoint it was written with).
pub fn write_jsonl(path: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut text = String::new();
    for m in history {
        let line = serde_json::to_string(m).map_err(|e| TrainError::file(path, e))?;
        text.push_str(&line);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads `metrics.jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochMetrics>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| TrainError::file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}
