//! Errors of weight loading and saving; each names the file and what is wrong.

use std::path::PathBuf;

use thiserror::Error;

/// A tensor whose shape differs between the file and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Key in the file.
    pub key: String,
    /// Shape the model expects (PyTorch layout).
    pub expected: Vec<usize>,
    /// Shape found in the file.
    pub found: Vec<usize>,
}

/// Everything that did not line up between a state dict and a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    /// Keys the model needs that the file lacks (in the file's naming).
    pub missing: Vec<String>,
    /// Keys in the file the model has no place for.
    pub unexpected: Vec<String>,
    /// Keys present on both sides with different shapes.
    pub shapes: Vec<ShapeMismatch>,
}

impl Mismatch {
    /// True when nothing is missing, unexpected or of the wrong shape.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shapes.is_empty()
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 20;
        let list = |f: &mut std::fmt::Formatter<'_>, title: &str, items: &[String]| {
            if items.is_empty() {
                return Ok(());
            }
            writeln!(f, "  {} {title}:", items.len())?;
            for k in items.iter().take(SHOWN) {
                writeln!(f, "    {k}")?;
            }
            if items.len() > SHOWN {
                writeln!(f, "    ... and {} more", items.len() - SHOWN)?;
            }
            Ok(())
        };
        list(f, "missing from the file", &self.missing)?;
        list(f, "unexpected in the file", &self.unexpected)?;
        let shapes: Vec<String> = self
            .shapes
            .iter()
            .map(|s| format!("{}: model {:?}, file {:?}", s.key, s.expected, s.found))
            .collect();
        list(f, "with another shape", &shapes)
    }
}

/// Why weights could not be read, loaded or written.
#[derive(Debug, Error)]
pub enum InteropError {
    /// The file does not exist or cannot be read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The file is not a safetensors or PyTorch checkpoint, or is damaged.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The state dict does not fit the model (strict mode); lists every difference.
    #[error(
        "{path} does not fit {model} ({family} layout); pass --non-strict to load what matches{reset}\n{mismatch}"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The model's registry name or description.
        model: String,
        /// Mapping table used.
        family: String,
        /// A hint about --reset-classifier when only the classifier differs.
        reset: String,
        /// The differences.
        mismatch: Box<Mismatch>,
    },
    /// Nothing in the file matched the model at all.
    #[error(
        "{path}: none of its {count} tensors belongs to a {family} model (first keys: {first}); is it a checkpoint of another architecture?"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Tensors in the file.
        count: usize,
        /// Mapping table used.
        family: String,
        /// A few of the file's keys.
        first: String,
    },
    /// Some tensors hold NaN, infinite or overflowing values, or negative variances.
    #[error(
        "{path}: non-finite or damaged values (NaN, inf, beyond ±1e18, or a negative BatchNorm variance) in {keys}"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The affected keys.
        keys: String,
    },
    /// A pretrained name timm does not publish.
    #[error("unknown pretrained model '{name}': {reason}; closest known: {} (run `cnnzoo list --pretrained`)", suggestions.join(", "))]
    UnknownTag {
        /// The name the user gave.
        name: String,
        /// Which part is unknown.
        reason: String,
        /// Known tags closest to it, best first.
        suggestions: Vec<String>,
    },
    /// A file could not be fetched from the hub or a URL.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// The export asked for something the exporter does not write.
    #[error("cannot export: {0}")]
    Unsupported(String),
    /// A model tensor has no name in the target layout.
    #[error("cannot export {path}: no {family} key for cnnzoo tensor '{tensor}'")]
    Unmapped {
        /// The file being written.
        path: PathBuf,
        /// Mapping table used.
        family: String,
        /// The tensor.
        tensor: String,
    },
}
