//! Per-channel mean and standard deviation of a data set, computed once and cached.

use std::path::Path;

use rayon::prelude::*;

use crate::dataset::InMemory;
use crate::transform::Normalize;

/// Mean and standard deviation of each channel on the 0..1 scale, over every pixel.
pub fn mean_std(data: &InMemory) -> Normalize {
    let [c, h, w] = data.shape;
    let plane = h * w;
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

/// The statistics cached at `cache` (JSON), or computed and written there. A cache that
/// cannot be written (read-only data folder) is skipped, not an error.
pub fn cached_mean_std(data: &InMemory, cache: &Path) -> Normalize {
    if let Ok(text) = std::fs::read_to_string(cache)
        && let Ok(n) = serde_json::from_str::<Normalize>(&text)
        && n.mean.len() == data.shape[0]
        && n.std.len() == data.shape[0]
    {
        return n;
    }
    let n = mean_std(data);
    if let Ok(text) = serde_json::to_string_pretty(&n) {
        let _ = std::fs::write(cache, text);
    }
    n
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
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("stats.json");
        assert_eq!(cached_mean_std(&data, &cache), n);
        assert!(cache.exists());
        // A cached value wins over recomputation.
        std::fs::write(&cache, r#"{"mean":[0.25],"std":[2.0]}"#).unwrap();
        assert_eq!(cached_mean_std(&data, &cache).mean, vec![0.25]);
    }
}
