//! `Preprocess` against timm's evaluation transform (`create_transform`, PIL's resize and
//! torchvision's center crop), on a fixture image made by `reference/preprocess_fixture.py`:
//! bicubic and bilinear, down- and upscaling, crops whose offsets round, PNG and JPEG.

use std::path::Path;

use cnnzoo_interop::predict::{Interpolation, Preprocess};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    size: usize,
    interpolation: String,
    crop_pct: f64,
    mean: [f32; 3],
    std: [f32; 3],
    image: Option<String>,
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[test]
fn preprocessing_equals_timms() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let cases: Cases =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    for (i, c) in cases.cases.iter().enumerate() {
        let p = Preprocess {
            size: c.size,
            crop_pct: c.crop_pct,
            interpolation: c.interpolation.parse::<Interpolation>().unwrap(),
            mean: c.mean,
            std: c.std,
        };
        let image = c.image.as_deref().unwrap_or("image.png");
        let ours = p.load(&dir.join(image)).unwrap();
        let timm: Vec<f32> = std::fs::read(dir.join(format!("case{i}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(ours.len(), timm.len(), "case {i}");
        let worst = ours
            .iter()
            .zip(&timm)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // One 8-bit level is 1 / 255 / std, about 0.017: the pipelines agree to the bit.
        assert!(
            worst < 1e-5,
            "case {i} ({}): max difference {worst}",
            c.interpolation
        );
    }
}
