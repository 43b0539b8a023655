//! Per-channel mean and standard deviation of a data set, computed each time: one pass over
//! the pixels costs milliseconds, and a cache could go stale or sit in a read-only folder.

use rayon::prelude::*;

use crate::dataset::InMemory;
use crate::transform::Normalize;

/// Mean and standard deviation of each channel on the 0..1 scale, over every pixel.
pub fn mean_std(data: &InMemory) -> Normalize {
    let [c, h, w] = data.shape;
    let plane = h * w;
    if plane == 0 || data.pixels.is_empty() {
        return Normalize {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        };
    }
    let n = data.labels.len().max(1);
    let (sums, squares): (Vec<f64>, Vec<f64>) = (0..c)
        .map(|k| {
            data.pixels
                .par_chunks(c * plane)
                .map(|img| {
                    img[k * plane..(k + 1) * plane]
                        .iter()
                        .fold((0f64, 0f64), |(s, q), &v| {
                            let v = f64::from(v) / 255.0;
                            (s + v, q + v * v)
                        })
                })
                .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
        })
        .unzip();
    let count = (n * plane) as f64;
    let mean: Vec<f32> = sums.iter().map(|s| (s / count) as f32).collect();
    let std = squares
        .iter()
        .zip(&sums)
        .map(|(q, s)| {
            let m = s / count;
            ((q / count - m * m).max(1e-12)).sqrt() as f32
        })
        .collect();
    Normalize { mean, std }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_of_two_known_images() {
        // One channel: image 1 all 0, image 2 all 255 -> mean 0.5, std 0.5.
        let data = InMemory {
            pixels: [vec![0u8; 4], vec![255u8; 4]].concat(),
            labels: vec![0, 1],
            shape: [1, 2, 2],
            classes: vec!["a".into(), "b".into()],
        };
        let n = mean_std(&data);
        assert!((n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6);
        // Zero-sized images (refused by the readers) give neutral statistics, not a panic.
        let empty = InMemory {
            pixels: Vec::new(),
            labels: vec![0],
            shape: [3, 0, 4],
            classes: vec!["a".into()],
        };
        let n = mean_std(&empty);
        assert_eq!((n.mean, n.std), (vec![0.0; 3], vec![1.0; 3]));
    }
}
