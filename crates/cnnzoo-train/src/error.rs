//! Training errors.

use std::path::PathBuf;
use thiserror::Error;

/// What can stop a training or evaluation run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Reading the data failed (the message names the file).
    #[error(transparent)]
    Data(#[from] cnnzoo_data::DataError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] cnnzoo_models::ModelError),
    /// A file of the run could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "loss became {value} at epoch {epoch}, batch {batch}: stopping; the last good checkpoint is kept (try a lower learning rate)"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// The loss value.
        value: f32,
    },
    /// A setting is invalid or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl TrainError {
    /// A file error.
    pub fn file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        TrainError::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
