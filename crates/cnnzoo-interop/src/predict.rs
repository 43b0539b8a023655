//! Image preprocessing as timm's evaluation transform does it, and ImageNet-1k class names.

use std::path::Path;

use crate::resize::{Filter, resize};

use crate::error::InteropError;

/// ImageNet mean (RGB), as timm's `IMAGENET_DEFAULT_MEAN`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation (RGB), as timm's `IMAGENET_DEFAULT_STD`.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Most pixels an image may have after the resize that precedes the center crop.
const MAX_RESIZED_PIXELS: u64 = 1 << 26;

/// Resampling filter of the resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Bilinear (torchvision's default, timm's for `*.tv_in1k` weights).
    Bilinear,
    /// Bicubic (timm's default for most of its own weights).
    Bicubic,
}

impl std::str::FromStr for Interpolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bilinear" => Ok(Interpolation::Bilinear),
            "bicubic" => Ok(Interpolation::Bicubic),
            other => Err(format!(
                "unknown interpolation '{other}' (bilinear or bicubic)"
            )),
        }
    }
}

/// timm's evaluation transform: resize the shorter side to `floor(size / crop_pct)`, center
/// crop `size` x `size`, scale to [0, 1], normalise by `mean` / `std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Output side in pixels.
    pub size: usize,
    /// Crop fraction (0.875: resize to 256 for a 224 crop).
    pub crop_pct: f64,
    /// Resize filter.
    pub interpolation: Interpolation,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl Preprocess {
    /// The pretrained configuration of torchvision's weights for `model`, which timm's
    /// `*.tv_in1k` tags share: 224 px (299 for Inception-v3), crop 0.875, bilinear (bicubic
    /// for Inception-v3), ImageNet mean and std.
    pub fn for_model(model: &str) -> Preprocess {
        let inception = model.starts_with("inception");
        Preprocess {
            size: if inception { 299 } else { 224 },
            crop_pct: 0.875,
            interpolation: if inception {
                Interpolation::Bicubic
            } else {
                Interpolation::Bilinear
            },
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Decodes `path` (PNG or JPEG) and returns the preprocessed image, `[3, size, size]`
    /// in CHW order.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, InteropError> {
        let bytes = std::fs::read(path).map_err(|e| InteropError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.apply(&bytes).map_err(|reason| InteropError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Decodes an image file's bytes (PNG or JPEG) and returns the preprocessed image,
    /// `[3, size, size]` in CHW order; the error says what is wrong.
    pub fn apply(&self, bytes: &[u8]) -> Result<Vec<f32>, String> {
        if !(self.crop_pct > 0.0 && self.crop_pct <= 1.0) || self.size == 0 {
            return Err(format!(
                "crop_pct must be in (0, 1] and size positive (got {} and {})",
                self.crop_pct, self.size
            ));
        }
        // A header claiming a huge image (a few hundred bytes of JPEG can) is refused before
        // the decode, which would take seconds (found by fuzzing).
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())?
            .into_dimensions()
            .map_err(|e| format!("cannot decode the image: {e}"))?;
        if u64::from(w) * u64::from(h) > MAX_RESIZED_PIXELS {
            return Err(format!(
                "{w}x{h} pixels, over the {MAX_RESIZED_PIXELS}-pixel limit (a damaged header?)"
            ));
        }
        let img = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())?
            .decode()
            .map_err(|e| format!("cannot decode the image: {e}"))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        // JPEGs are decoded again by libjpeg-turbo's decoder (mozjpeg), as PIL decodes them:
        // the `image` crate's decoder differs by up to 4 levels in an eighth of the pixels.
        let pixels = jpeg_as_pil_decodes(bytes)
            .filter(|p| p.len() == img.as_raw().len())
            .unwrap_or_else(|| img.into_raw());
        let scale = (self.size as f64 / self.crop_pct).floor() as u32;
        let (nw, nh) = if w <= h {
            (
                scale,
                (f64::from(scale) * f64::from(h) / f64::from(w)) as u32,
            )
        } else {
            (
                (f64::from(scale) * f64::from(w) / f64::from(h)) as u32,
                scale,
            )
        };
        let filter = match self.interpolation {
            Interpolation::Bilinear => Filter::Bilinear,
            Interpolation::Bicubic => Filter::Bicubic,
        };
        let (w, h, nw, nh) = (
            w as usize,
            h as usize,
            nw.max(1) as usize,
            nh.max(1) as usize,
        );
        // A sliver (1 x 60000 px) would resize to gigabytes before the crop.
        if (nw as u64) * (nh as u64) > MAX_RESIZED_PIXELS {
            return Err(format!(
                "a {w}x{h} image resizes to {nw}x{nh} before the crop, over {MAX_RESIZED_PIXELS} pixels (a crop size too large, or an aspect ratio too extreme)"
            ));
        }
        let resized = resize(&pixels, 3, (w, h), (nw, nh), filter);
        let s = self.size;
        if nw < s || nh < s {
            return Err(format!(
                "resized to {nw}x{nh}, smaller than the {s} px crop"
            ));
        }
        // torchvision's CenterCrop: int(round((n - s) / 2)), Python's round half to even.
        let offset = |n: usize| {
            let d = n - s;
            if d % 2 == 1 && (d / 2) % 2 == 1 {
                d / 2 + 1
            } else {
                d / 2
            }
        };
        let (x0, y0) = (offset(nw), offset(nh));
        let mut out = vec![0f32; 3 * s * s];
        let plane = s * s;
        for y in 0..s {
            for x in 0..s {
                let p = &resized[((y0 + y) * nw + x0 + x) * 3..][..3];
                for c in 0..3 {
                    out[c * plane + y * s + x] =
                        (f32::from(p[c]) / 255.0 - self.mean[c]) / self.std[c];
                }
            }
        }
        Ok(out)
    }
}

/// RGB pixels of a JPEG as libjpeg-turbo (and so PIL) decodes it, or `None` for another format
/// or a file it rejects (the caller has decoded it already, so the error is not lost).
fn jpeg_as_pil_decodes(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return None;
    }
    // libjpeg reports fatal errors by unwinding (mozjpeg's documented way to catch them).
    let decoded = std::panic::catch_unwind(|| {
        let mut started = mozjpeg::Decompress::new_mem(bytes).ok()?.rgb().ok()?;
        let px: Vec<[u8; 3]> = started.read_scanlines().ok()?;
        started.finish().ok()?;
        Some(px.into_iter().flatten().collect::<Vec<u8>>())
    });
    decoded.ok().flatten()
}

/// The 1000 ImageNet-1k class names in index order (the first WordNet lemma of each synset,
/// from timm's `ImageNetInfo`).
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("../assets/imagenet_classes.txt")
        .lines()
        .collect()
}

/// Softmax probabilities of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_a_thousand_names() {
        let names = imagenet_classes();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench");
        assert_eq!(names[999], "toilet tissue");
    }

    #[test]
    fn a_uniform_image_becomes_its_normalised_colour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grey.png");
        image::RgbImage::from_pixel(300, 200, image::Rgb([128, 64, 255]))
            .save(&path)
            .unwrap();
        let p = Preprocess::for_model("resnet50");
        let x = p.load(&path).unwrap();
        assert_eq!(x.len(), 3 * 224 * 224);
        for (c, v) in [128.0f32, 64.0, 255.0].iter().enumerate() {
            let want = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            let got = x[c * 224 * 224 + 224 * 112 + 112];
            assert!((got - want).abs() < 1e-5, "channel {c}: {got} vs {want}");
        }
        let broken = dir.path().join("broken.jpg");
        std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
        let e = p.load(&broken).unwrap_err().to_string();
        assert!(e.contains("broken.jpg") && e.contains("decode"), "{e}");
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
    }
}
