//! Data errors: each names the file (or folder) and what is wrong with it.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong reading, checking or fetching a data set.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file or folder could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file expected by a data set is not there.
    #[error("{path}: file not found{hint}")]
    Missing {
        /// The file that should exist.
        path: PathBuf,
        /// How to get it (empty when there is nothing to add).
        hint: String,
    },
    /// The bytes are not in the expected format (magic, header, size).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A label is not a valid class index.
    #[error("{path}: label {label} of item {index} is out of range (classes: {classes})")]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Item index.
        index: usize,
        /// The label found.
        label: u32,
        /// The number of classes.
        classes: usize,
    },
    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A download failed or its checksum did not match.
    #[error("{0}")]
    Download(String),
    /// A request that makes no sense (batch size 0, unknown data set name, ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path,
                hint: String::new(),
            }
        } else {
            DataError::Io { path, source }
        }
    }

    /// A format error for `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
