//! IDX files (MNIST, Fashion-MNIST): big-endian header, `u8` payload, raw or gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dataset::InMemory;
use crate::error::DataError;

/// An IDX array of unsigned bytes: its dimensions and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions from the header (`[n, 28, 28]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The payload.
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of `u8` values with `expected_rank` dimensions.
pub fn read_idx(path: &Path, expected_rank: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes, expected_rank).map_err(|reason| DataError::format(path, reason))
}

/// Parses IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8], expected_rank: usize) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!("truncated: {} bytes, no IDX header", bytes.len()));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = 0x0800 | expected_rank as u32;
    if magic != expected {
        return Err(format!(
            "wrong magic number 0x{magic:08x} (expected 0x{expected:08x}: unsigned bytes, {expected_rank} dimension{})",
            if expected_rank == 1 { "" } else { "s" }
        ));
    }
    let header = 4 + 4 * expected_rank;
    if bytes.len() < header {
        return Err(format!(
            "truncated header: {} bytes of {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..expected_rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let payload = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("header {dims:?} describes more bytes than can be addressed"))?;
    let found = bytes.len() - header;
    if found != payload {
        let what = if found < payload {
            "truncated"
        } else {
            "trailing data"
        };
        return Err(format!(
            "{what}: header {dims:?} needs {payload} bytes of data, found {found}"
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Loads an images file (rank 3) and a labels file (rank 1) as one data set, checking the
/// counts agree and every label is below `classes.len()`.
pub fn load_pair(images: &Path, labels: &Path, classes: &[&str]) -> Result<InMemory, DataError> {
    let img = read_idx(images, 3)?;
    let lab = read_idx(labels, 1)?;
    pair(img, lab, images, labels, classes)
}

/// Parses an images file's and a labels file's bytes (raw, not gzip) as one data set; the
/// paths only name the files in errors.
pub fn parse_pair(
    images: &[u8],
    labels: &[u8],
    paths: (&Path, &Path),
    classes: &[&str],
) -> Result<InMemory, DataError> {
    let img = parse_idx(images, 3).map_err(|r| DataError::format(paths.0, r))?;
    let lab = parse_idx(labels, 1).map_err(|r| DataError::format(paths.1, r))?;
    pair(img, lab, paths.0, paths.1, classes)
}

fn pair(
    img: IdxArray,
    lab: IdxArray,
    images: &Path,
    labels: &Path,
    classes: &[&str],
) -> Result<InMemory, DataError> {
    if img.dims[0] == 0 {
        return Err(DataError::format(images, "holds no images"));
    }
    if img.dims[1] == 0 || img.dims[2] == 0 {
        return Err(DataError::format(
            images,
            format!(
                "images of {}x{} pixels (the header's height and width must be at least 1)",
                img.dims[1], img.dims[2]
            ),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::format(
            labels,
            format!(
                "{} labels for {} images in {}",
                lab.dims[0],
                img.dims[0],
                images.display()
            ),
        ));
    }
    if let Some((index, &label)) = lab
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes.len())
    {
        return Err(DataError::LabelOutOfRange {
            path: labels.to_path_buf(),
            index,
            label: u32::from(label),
            classes: classes.len(),
        });
    }
    Ok(InMemory {
        pixels: img.data,
        labels: lab.data.iter().map(|&l| u32::from(l)).collect(),
        shape: [1, img.dims[1], img.dims[2]],
        classes: classes
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    })
}

/// Fashion-MNIST's class names.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// MNIST's class names.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The official file stem of a split (`train` or `t10k`) and kind (`images` / `labels`).
pub fn official_name(train: bool, images: bool) -> String {
    let split = if train { "train" } else { "t10k" };
    if images {
        format!("{split}-images-idx3-ubyte")
    } else {
        format!("{split}-labels-idx1-ubyte")
    }
}

/// The file for `stem` in `dir`: `stem.gz` or `stem` (either is accepted).
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for candidate in [dir.join(format!("{stem}.gz")), dir.join(stem)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::Missing {
        path: dir.join(format!("{stem}.gz")),
        hint: format!(
            " (nor {stem}); place the official IDX files ({}, {}, {}, {}, raw or .gz) in {}, or pass --download",
            official_name(true, true),
            official_name(true, false),
            official_name(false, true),
            official_name(false, false),
            dir.display()
        ),
    })
}

/// Loads the train or test split of an MNIST-format data set from `dir` (official names).
pub fn load_split(dir: &Path, train: bool, classes: &[&str]) -> Result<InMemory, DataError> {
    let images = find_file(dir, &official_name(train, true))?;
    let labels = find_file(dir, &official_name(train, false))?;
    load_pair(&images, &labels, classes)
}

/// Encodes an IDX file (for tests and tools that write fixtures).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_malformation_is_named() {
        let good = encode_idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(&good, 3).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data.len(), 12);
        assert!(
            parse_idx(&good[..good.len() - 1], 3)
                .unwrap_err()
                .contains("truncated")
        );
        let mut long = good.clone();
        long.push(0);
        assert!(parse_idx(&long, 3).unwrap_err().contains("trailing data"));
        assert!(parse_idx(&good, 1).unwrap_err().contains("wrong magic"));
        assert!(
            parse_idx(&good[..6], 3)
                .unwrap_err()
                .contains("truncated header")
        );
        assert!(parse_idx(&[], 3).unwrap_err().contains("no IDX header"));
        // Dimensions whose product passes usize::MAX: an error, not an overflow.
        let huge = encode_idx(
            &[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize],
            &[],
        );
        assert!(parse_idx(&huge, 3).unwrap_err().contains("addressed"));
    }

    #[test]
    fn empty_or_zero_sized_images_are_refused() {
        let p = (Path::new("img"), Path::new("lab"));
        let labels = encode_idx(&[2], &[0, 1]);
        let flat = encode_idx(&[2, 0, 5], &[]);
        let e = parse_pair(&flat, &labels, p, &MNIST_CLASSES).unwrap_err();
        assert!(e.to_string().contains("0x5 pixels"), "{e}");
        let none = encode_idx(&[0, 2, 2], &[]);
        let e = parse_pair(&none, &encode_idx(&[0], &[]), p, &MNIST_CLASSES).unwrap_err();
        assert!(e.to_string().contains("no images"), "{e}");
        let good = encode_idx(&[2, 1, 1], &[3, 4]);
        assert_eq!(
            parse_pair(&good, &labels, p, &MNIST_CLASSES).unwrap().shape,
            [1, 1, 1]
        );
    }
}
