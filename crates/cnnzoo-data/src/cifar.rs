//! CIFAR-10 and CIFAR-100 in their binary format: fixed-size records of label byte(s) then
//! 3072 bytes of 32x32 RGB pixels, channel-major.

use std::path::{Path, PathBuf};

use crate::dataset::InMemory;
use crate::error::DataError;

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes, one label byte per record.
    Ten,
    /// 100 fine classes; records hold a coarse then a fine label byte.
    Hundred,
}

/// CIFAR-10's class names.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

impl Cifar {
    /// Label bytes before the pixels of each record.
    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    /// The folder the official archive unpacks to.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            Cifar::Hundred => "cifar-100-binary",
        }
    }

    /// The files of a split, in order.
    pub fn files(self, train: bool) -> Vec<String> {
        match (self, train) {
            (Cifar::Ten, true) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            (Cifar::Ten, false) => vec!["test_batch.bin".into()],
            (Cifar::Hundred, true) => vec!["train.bin".into()],
            (Cifar::Hundred, false) => vec!["test.bin".into()],
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::Hundred => "fine_label_names.txt",
        }
    }
}

/// The folder holding the binary files: `dir` itself or its official sub-folder.
fn resolve(dir: &Path, which: Cifar) -> PathBuf {
    let nested = dir.join(which.folder());
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Parses the records of one binary file into `out`.
pub fn parse_records(
    path: &Path,
    bytes: &[u8],
    which: Cifar,
    out: &mut InMemory,
) -> Result<(), DataError> {
    let record = which.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records (truncated or not CIFAR binary)",
                bytes.len()
            ),
        ));
    }
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = u32::from(r[which.label_bytes() - 1]);
        if label as usize >= which.classes() {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index: i,
                label,
                classes: which.classes(),
            });
        }
        out.labels.push(label);
        out.pixels.extend_from_slice(&r[which.label_bytes()..]);
    }
    Ok(())
}

/// Parses a class-names file (`batches.meta.txt`): one name per line, blank lines skipped.
pub fn parse_class_names(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (byte {}): not a class-names file?",
            e.valid_up_to()
        )
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Loads the train or test split from `dir` (the unpacked folder or its parent).
pub fn load_split(dir: &Path, which: Cifar, train: bool) -> Result<InMemory, DataError> {
    let root = resolve(dir, which);
    let names = root.join(which.names_file());
    let classes = match std::fs::read(&names) {
        Ok(bytes) => parse_class_names(&bytes).map_err(|r| DataError::format(&names, r))?,
        Err(_) if which == Cifar::Ten => CIFAR10_CLASSES
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        Err(_) => (0..100).map(|i| format!("class_{i}")).collect(),
    };
    let mut out = InMemory {
        pixels: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes,
    };
    for name in which.files(train) {
        let path = root.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| match DataError::io(&path, e) {
            DataError::Missing { path, .. } => DataError::Missing {
                path,
                hint: format!(
                    "; unpack the official binary archive so that {} holds {}, or pass --download",
                    dir.join(which.folder()).display(),
                    which.files(train).join(", ")
                ),
            },
            other => other,
        })?;
        parse_records(&path, &bytes, which, &mut out)?;
    }
    if out.classes.len() != which.classes() {
        return Err(DataError::format(
            root.join(which.names_file()),
            format!(
                "{} class names, expected {}",
                out.classes.len(),
                which.classes()
            ),
        ));
    }
    Ok(out)
}
