//! ImageFolder: one sub-folder per class (sorted by name), PNG, JPEG or BMP files inside.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Sample};
use crate::error::DataError;

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// A folder-per-class image data set, decoded on access.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// Every image and its label.
    pub items: Vec<(PathBuf, u32)>,
    /// Class names (folder names), sorted.
    pub classes: Vec<String>,
    /// Channels to decode to (3 RGB, 1 grayscale).
    pub channels: usize,
}

impl ImageFolder {
    /// Scans `root`: every sub-folder is a class; an empty class folder is an error.
    pub fn open(root: &Path, channels: usize) -> Result<Self, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Invalid(format!(
                "images decode to 1 or 3 channels, not {channels}"
            )));
        }
        let entries = std::fs::read_dir(root).map_err(|e| DataError::io(root, e))?;
        let mut classes: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(root, e))?;
            if entry.path().is_dir() {
                classes.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        if classes.is_empty() {
            return Err(DataError::format(
                root,
                "no class folders (expected one sub-folder per class)",
            ));
        }
        classes.sort();
        let mut items = Vec::new();
        for (label, (_, dir)) in classes.iter().enumerate() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| DataError::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                // Regular files only: opening a FIFO or a device would block or read forever.
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            if files.is_empty() {
                return Err(DataError::format(
                    dir,
                    format!("empty class folder (no {} files)", EXTENSIONS.join("/")),
                ));
            }
            files.sort();
            items.extend(files.into_iter().map(|f| (f, label as u32)));
        }
        Ok(ImageFolder {
            items,
            classes: classes.into_iter().map(|(n, _)| n).collect(),
            channels,
        })
    }

    /// Decodes one file to CHW `u8` with the folder's channel count.
    pub fn decode(&self, path: &Path) -> Result<(Vec<u8>, [usize; 3]), DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        decode_bytes(&bytes, self.channels).map_err(|reason| DataError::Decode {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Decodes an image file's bytes (PNG, JPEG or BMP, by content) to CHW `u8` with 1 or 3
/// channels. The image crate's default limits (512 MiB per image) refuse decompression bombs.
pub fn decode_bytes(bytes: &[u8], channels: usize) -> Result<(Vec<u8>, [usize; 3]), String> {
    check_pixels(bytes)?;
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err(format!("{}x{} image", img.width(), img.height()));
    }
    Ok(to_chw(&img, channels))
}

/// Most pixels an image file may decode to (a 8192 x 8192 photo): a few hundred bytes of
/// JPEG can claim 1548 x 56063 pixels and take seconds to decode (found by fuzzing).
pub const MAX_PIXELS: u64 = 1 << 26;

/// Refuses an image whose header claims more than [`MAX_PIXELS`], before decoding it.
pub fn check_pixels(bytes: &[u8]) -> Result<(), String> {
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "{w}x{h} pixels, over the {MAX_PIXELS}-pixel limit (a damaged header or a decompression bomb?)"
        ));
    }
    Ok(())
}

/// Converts a decoded image to channel-major `u8` with 1 or 3 channels.
pub fn to_chw(img: &image::DynamicImage, channels: usize) -> (Vec<u8>, [usize; 3]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if channels == 1 {
        return (img.to_luma8().into_raw(), [1, h, w]);
    }
    let rgb = img.to_rgb8();
    let mut out = vec![0u8; 3 * h * w];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * h * w + i] = px.0[c];
        }
    }
    (out, [3, h, w])
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let (path, label) = &self.items[index];
        let (pixels, shape) = self.decode(path)?;
        Ok(Sample {
            pixels,
            shape,
            label: *label,
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> u32 {
        self.items[index].1
    }
}
