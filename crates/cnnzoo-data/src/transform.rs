//! Per-sample augmentation and normalisation, seeded so the same (seed, epoch, index) always
//! gives the same pixels whatever thread assembles the batch.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::dataset::Sample;

/// Per-channel mean and standard deviation, on the 0..1 scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel.
    pub std: Vec<f32>,
}

/// How a sample becomes a training (or evaluation) input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Random crop back to the input size after zero padding by this many pixels (4 for
    /// CIFAR, 2 for 28x28); `None` or 0: no crop.
    pub pad_crop: Option<usize>,
    /// Random horizontal flip with probability 1/2.
    pub hflip: bool,
    /// Random-resized crop to this square size (ImageFolder training).
    pub random_resized_crop: Option<usize>,
    /// Resize the shorter side to `.0`, then center-crop `.1` (ImageFolder evaluation).
    pub resize_center_crop: Option<(usize, usize)>,
    /// Normalisation applied last.
    pub normalize: Normalize,
}

impl Augment {
    /// No augmentation, only normalisation.
    pub fn eval(normalize: Normalize) -> Self {
        Augment {
            pad_crop: None,
            hflip: false,
            random_resized_crop: None,
            resize_center_crop: None,
            normalize,
        }
    }

    /// The output shape for an input of `shape`.
    pub fn output_shape(&self, shape: [usize; 3]) -> [usize; 3] {
        match (self.random_resized_crop, self.resize_center_crop) {
            (Some(s), _) | (None, Some((_, s))) => [shape[0], s, s],
            (None, None) => shape,
        }
    }

    /// Applies the pipeline to one sample, writing normalised `f32` CHW into `out`.
    pub fn apply(&self, sample: &Sample, rng: &mut StdRng, out: &mut [f32]) {
        let [c, h, w] = sample.shape;
        let [_, oh, ow] = self.output_shape(sample.shape);
        // A crop window in source coordinates (may extend past the image: zero padding).
        let (mut x0, mut y0, mut cw, mut ch) = (0.0f32, 0.0f32, w as f32, h as f32);
        if self.random_resized_crop.is_some() {
            (x0, y0, cw, ch) = random_resized_window(w, h, rng);
        } else if let Some((resize, crop)) = self.resize_center_crop {
            let scale = resize as f32 / h.min(w) as f32;
            (cw, ch) = (crop as f32 / scale, crop as f32 / scale);
            (x0, y0) = ((w as f32 - cw) / 2.0, (h as f32 - ch) / 2.0);
        }
        let mut dx = 0isize;
        let mut dy = 0isize;
        if let Some(pad) = self.pad_crop.filter(|p| *p > 0) {
            let p = pad as i64;
            dx = rng.random_range(-p..=p) as isize;
            dy = rng.random_range(-p..=p) as isize;
        }
        let flip = self.hflip && rng.random_bool(0.5);
        let resample = self.random_resized_crop.is_some() || self.resize_center_crop.is_some();
        for k in 0..c {
            let (m, s) = (self.normalize.mean[k], self.normalize.std[k]);
            let plane = &sample.pixels[k * h * w..(k + 1) * h * w];
            for y in 0..oh {
                for x in 0..ow {
                    let xs = if flip { ow - 1 - x } else { x };
                    let v = if resample {
                        let sx = x0 + (xs as f32 + 0.5) * cw / ow as f32 - 0.5;
                        let sy = y0 + (y as f32 + 0.5) * ch / oh as f32 - 0.5;
                        bilinear(plane, h, w, sx, sy)
                    } else {
                        let sx = xs as isize + dx;
                        let sy = y as isize + dy;
                        if sx < 0 || sy < 0 || sx >= w as isize || sy >= h as isize {
                            0.0
                        } else {
                            f32::from(plane[sy as usize * w + sx as usize])
                        }
                    };
                    out[k * oh * ow + y * ow + x] = (v / 255.0 - m) / s;
                }
            }
        }
    }
}

/// Bilinear sample of a `u8` plane at (x, y), clamped to the edges.
fn bilinear(plane: &[u8], h: usize, w: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx: usize, yy: usize| f32::from(plane[yy * w + xx]);
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// torchvision's RandomResizedCrop window: area 8%..100%, aspect 3/4..4/3, ten tries, then
/// the central crop.
fn random_resized_window(w: usize, h: usize, rng: &mut StdRng) -> (f32, f32, f32, f32) {
    let area = (w * h) as f32;
    for _ in 0..10 {
        let target = area * rng.random_range(0.08f32..=1.0);
        let log_ratio = rng.random_range((3.0f32 / 4.0).ln()..=(4.0f32 / 3.0).ln());
        let ratio = log_ratio.exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w as f32 && ch <= h as f32 {
            let x0 = rng.random_range(0..=(w - cw as usize)) as f32;
            let y0 = rng.random_range(0..=(h - ch as usize)) as f32;
            return (x0, y0, cw, ch);
        }
    }
    let side = w.min(h) as f32;
    ((w as f32 - side) / 2.0, (h as f32 - side) / 2.0, side, side)
}

/// The RNG for one sample of one epoch: independent of thread scheduling.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> StdRng {
    // SplitMix64 finaliser over the three inputs.
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            pixels: (0..16).map(|v| v as u8 * 10).collect(),
            shape: [1, 4, 4],
            label: 0,
        }
    }

    fn unit() -> Normalize {
        Normalize {
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        }
    }

    #[test]
    fn eval_pipeline_only_normalises() {
        let a = Augment::eval(unit());
        let mut out = vec![0.0; 16];
        a.apply(&sample(), &mut sample_rng(0, 0, 0), &mut out);
        for (i, v) in out.iter().enumerate() {
            assert!((v - i as f32 * 10.0).abs() < 1e-3, "{i}: {v}");
        }
    }

    #[test]
    fn pad_crop_shifts_with_zero_fill_and_flip_mirrors() {
        let mut a = Augment::eval(unit());
        a.pad_crop = Some(1);
        a.hflip = true;
        let mut seen_shift = false;
        for i in 0..50 {
            let mut out = vec![0.0; 16];
            a.apply(&sample(), &mut sample_rng(1, 0, i), &mut out);
            // Every output pixel is either a source pixel or the zero padding.
            assert!(
                out.iter()
                    .all(|v| ((*v / 10.0).round() * 10.0 - v).abs() < 1e-3)
            );
            seen_shift |= out[0] == 0.0 || out[15] == 0.0;
        }
        assert!(seen_shift);
        // Same seed, epoch and index: same pixels.
        let (mut x, mut y) = (vec![0.0; 16], vec![0.0; 16]);
        a.apply(&sample(), &mut sample_rng(7, 3, 5), &mut x);
        a.apply(&sample(), &mut sample_rng(7, 3, 5), &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn center_crop_of_a_constant_image_is_constant_and_sized() {
        let s = Sample {
            pixels: vec![100; 3 * 10 * 20],
            shape: [3, 10, 20],
            label: 0,
        };
        let mut a = Augment::eval(Normalize {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        });
        a.resize_center_crop = Some((8, 6));
        assert_eq!(a.output_shape(s.shape), [3, 6, 6]);
        let mut out = vec![0.0; 3 * 36];
        a.apply(&s, &mut sample_rng(0, 0, 0), &mut out);
        assert!(out.iter().all(|v| (v - 100.0 / 255.0).abs() < 1e-6));
        a.resize_center_crop = None;
        a.random_resized_crop = Some(5);
        let mut out = vec![0.0; 3 * 25];
        a.apply(&s, &mut sample_rng(0, 0, 1), &mut out);
        assert!(out.iter().all(|v| (v - 100.0 / 255.0).abs() < 1e-6));
    }
}
