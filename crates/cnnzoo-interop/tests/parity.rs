//! Logits parity with PyTorch for every ImageNet model of the registry, without PyTorch: the
//! fixtures (made by `reference/make_fixtures.py`) hold each timm / torchvision model's
//! (key, shape) list and its logits when every tensor is filled by a formula. These tests
//! fill the same tensors by the same formula, write them to a safetensors file under those
//! keys, load the file through the real loader and compare the eval-mode logits.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo_interop::{InteropError, LoadOptions, load_file, save_timm_safetensors};
use cnnzoo_models::{Model, ModelOptions, create, list};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    model: String,
    source: String,
    input: [usize; 4],
    keys: Vec<(String, Vec<usize>)>,
    logits: Vec<f64>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Fixture {
    let path = fixtures_dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The fixture formula (see make_fixtures.py).
fn fill(key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let phase = 0.01 * f64::from(fnv1a32(key) % 997);
    let fan_in: usize = shape.iter().skip(1).product();
    (0..n)
        .map(|i| {
            let s = (0.37 * i as f64 + phase).sin();
            let v = if key.ends_with("running_var") {
                1.0 + 0.25 * (1.0 + s)
            } else if key.ends_with("running_mean") {
                0.1 * s
            } else if shape.len() <= 1 {
                if key.ends_with("weight") {
                    1.0 + 0.1 * s
                } else {
                    0.1 * s
                }
            } else {
                2.0 * s / (fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

/// A minimal safetensors writer (f32 only), so the tests exercise the loader, not a writer.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (key, shape, data) in tensors {
        let end = offset + 4 * data.len();
        header.insert(
            key.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + text.len() + offset);
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    for (_, _, data) in tensors {
        for v in data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn build(name: &str) -> Model {
    create(name, ModelOptions::default())
        .unwrap()
        .init(&Device::flex())
}

fn logits(model: Model, input: [usize; 4]) -> Vec<f32> {
    let n: usize = input.iter().product();
    let x: Vec<f32> = (0..n).map(|i| (0.013 * i as f64).sin() as f32).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, input), &Device::flex());
    model
        .valid()
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn check_parity(name: &str, dir: &Path) {
    let f = fixture(name);
    assert_eq!(f.model, name);
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .keys
        .iter()
        .map(|(k, s)| (k.clone(), s.clone(), fill(k, s)))
        .collect();
    let path = dir.join(format!("{name}.safetensors"));
    write_safetensors(&path, &tensors);
    drop(tensors);
    let (model, report) = load_file(build(name), &path, LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name} ({} keys): {e}", f.source));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(report.loaded, f.keys.len(), "{name}");
    let ours = logits(model, f.input);
    assert_eq!(ours.len(), f.logits.len(), "{name}");
    let scale = f.logits.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&f.logits)
        .fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
    println!(
        "{name}: max |diff| {diff:.3e}, logits scale {scale:.3}, relative {:.3e}",
        diff / scale
    );
    assert!(
        diff <= 1e-4 * scale.max(1e-6),
        "{name}: max |diff| {diff:e} exceeds 1e-4 x {scale}"
    );
}

#[test]
fn logits_match_pytorch_for_every_imagenet_model() {
    let dir = tempfile::tempdir().unwrap();
    // cnnzoo's own designs without a timm or torchvision model have no fixture.
    let own = ["se_inception_v3"];
    let imagenet: Vec<&str> = list()
        .iter()
        .filter(|s| s.input[1] >= 224 && !own.contains(&s.name))
        .map(|s| s.name)
        .collect();
    assert_eq!(imagenet.len(), 38, "{imagenet:?}");
    for name in imagenet {
        check_parity(name, dir.path());
    }
}

#[test]
fn a_file_written_by_cnnzoo_loads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["seresnet18", "densenet121", "googlenet"] {
        let model = build(name);
        let path = dir.path().join(format!("{name}.safetensors"));
        save_timm_safetensors(&model, &path).unwrap();
        let input = [1, 3, 64, 64];
        let before = logits(model, input);
        let (again, report) = load_file(build(name), &path, LoadOptions::default()).unwrap();
        assert!(report.mismatch.is_empty());
        let after = logits(again, input);
        assert_eq!(before, after, "{name}");
    }
}

#[test]
fn a_pytorch_training_checkpoint_in_f16_loads() {
    // torch.save({"state_dict": <timm-keyed resnet20 in float16>, "epoch": 3}).
    let path = fixtures_dir().join("resnet20_f16.pth");
    let (model, report) = load_file(build("resnet20"), &path, LoadOptions::default()).unwrap();
    // conv1 + bn1 (5), nine blocks of two convs and two BatchNorms (90), fc (2).
    assert_eq!(report.loaded, 97);
    let Model::ResNet(net) = &model else {
        panic!("not a resnet")
    };
    let w: Vec<f32> = net.stages[1][0]
        .conv2
        .conv
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let want: Vec<f32> = fill("layer2.0.conv2.weight", &[32, 32, 3, 3])
        .into_iter()
        .map(half_round)
        .collect();
    assert_eq!(w, want);
}

/// f32 -> f16 -> f32, round to nearest even, for normal values.
fn half_round(v: f32) -> f32 {
    let bits = v.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    if !(-14..=15).contains(&exp) {
        return if exp < -14 { half_subnormal(v) } else { v };
    }
    let drop = 13;
    let mantissa = bits & ((1 << 23) - 1);
    let rest = mantissa & ((1 << drop) - 1);
    let mut kept = bits & !((1 << drop) - 1);
    let half = 1 << (drop - 1);
    if rest > half || (rest == half && (kept >> drop) & 1 == 1) {
        kept += 1 << drop;
    }
    f32::from_bits(kept)
}

fn half_subnormal(v: f32) -> f32 {
    let step = 2f32.powi(-24);
    (v / step).round_ties_even() * step
}

#[test]
fn strict_loading_reports_every_difference_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("resnet18");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .keys
        .iter()
        .filter(|(k, _)| k != "layer1.0.conv1.weight")
        .map(|(k, s)| (k.clone(), s.clone(), fill(k, s)))
        .collect();
    tensors.push(("layer9.0.conv1.weight".into(), vec![2], vec![0.0, 0.0]));
    for t in tensors.iter_mut().filter(|t| t.0 == "layer2.0.bn1.bias") {
        *t = (t.0.clone(), vec![3], vec![0.0; 3]);
    }
    let path = dir.path().join("broken.safetensors");
    write_safetensors(&path, &tensors);
    let err = load_file(build("resnet18"), &path, LoadOptions::default()).unwrap_err();
    let text = err.to_string();
    for needle in [
        "1 missing from the file",
        "layer1.0.conv1.weight",
        "1 unexpected in the file",
        "layer9.0.conv1.weight",
        "layer2.0.bn1.bias: model [128], file [3]",
        "--non-strict",
    ] {
        assert!(text.contains(needle), "'{needle}' not in:\n{text}");
    }
    let (_, report) = load_file(
        build("resnet18"),
        &path,
        LoadOptions {
            non_strict: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.loaded, f.keys.len() - 2);
    assert_eq!(report.mismatch.missing, vec!["layer1.0.conv1.weight"]);
}

#[test]
fn another_class_count_needs_reset_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("resnet18");
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .keys
        .iter()
        .map(|(k, s)| (k.clone(), s.clone(), fill(k, s)))
        .collect();
    let path = dir.path().join("r18.safetensors");
    write_safetensors(&path, &tensors);
    let ten = || {
        create(
            "resnet18",
            ModelOptions {
                num_classes: Some(10),
                in_channels: None,
            },
        )
        .unwrap()
        .init(&Device::flex())
    };
    let text = load_file(ten(), &path, LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(text.contains("--reset-classifier"), "{text}");
    let (_, report) = load_file(
        ten(),
        &path,
        LoadOptions {
            reset_classifier: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.reset, vec!["fc.bias", "fc.weight"]);
    assert_eq!(report.loaded, f.keys.len() - 2);
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = || build("resnet18");
    // Not a weights file at all.
    let text_file = dir.path().join("notes.pth");
    std::fs::write(&text_file, "hello, these are not weights\n").unwrap();
    let e = load_file(model(), &text_file, LoadOptions::default()).unwrap_err();
    assert!(matches!(e, InteropError::Format { .. }), "{e}");
    // Missing file.
    let e = load_file(
        model(),
        &dir.path().join("nope.safetensors"),
        LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, InteropError::Io { .. }), "{e}");
    // Truncated safetensors.
    let f = fixture("resnet18");
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .keys
        .iter()
        .map(|(k, s)| (k.clone(), s.clone(), fill(k, s)))
        .collect();
    let full = dir.path().join("full.safetensors");
    write_safetensors(&full, &tensors);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_file(model(), &cut, LoadOptions::default()).unwrap_err();
    assert!(matches!(e, InteropError::Format { .. }), "{e}");
    // A checkpoint of another architecture.
    let e = load_file(build("densenet121"), &full, LoadOptions::default()).unwrap_err();
    assert!(matches!(e, InteropError::Foreign { .. }), "{e}");
    assert!(e.to_string().contains("another architecture"), "{e}");
    // NaN in weights.
    let mut poisoned = tensors.clone();
    poisoned[0].2[5] = f32::NAN;
    let nan = dir.path().join("nan.safetensors");
    write_safetensors(&nan, &poisoned);
    let e = load_file(model(), &nan, LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("conv1.weight"), "{e}");
    assert!(matches!(e, InteropError::NonFinite { .. }), "{e}");
    // A negative BatchNorm variance, and a finite weight large enough to overflow f32 logits.
    for (key, value) in [("bn1.running_var", -0.5f32), ("fc.weight", 3e38)] {
        let mut damaged = tensors.clone();
        let t = damaged.iter_mut().find(|t| t.0 == key).unwrap();
        t.2[0] = value;
        let path = dir.path().join("damaged.safetensors");
        write_safetensors(&path, &damaged);
        let e = load_file(model(), &path, LoadOptions::default()).unwrap_err();
        assert!(matches!(e, InteropError::NonFinite { .. }), "{key}: {e}");
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn torchvision_aux_heads_are_dropped_when_the_model_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("googlenet");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .keys
        .iter()
        .map(|(k, s)| (k.clone(), s.clone(), fill(k, s)))
        .collect();
    tensors.push(("aux1.fc2.bias".into(), vec![1000], vec![0.0; 1000]));
    tensors.push(("aux2.fc2.bias".into(), vec![1000], vec![0.0; 1000]));
    let path = dir.path().join("g.safetensors");
    write_safetensors(&path, &tensors);
    let (_, report) = load_file(build("googlenet"), &path, LoadOptions::default()).unwrap();
    assert_eq!(report.dropped_aux, 2);
    assert_eq!(report.loaded, f.keys.len());
}

#[test]
fn files_are_read_with_their_own_keys_whatever_their_first_bytes() {
    use cnnzoo_interop::state_dict::{FileKind, detect, read};
    // torch.save({"features.1.weight": arange(6).reshape(2, 3), "features.3.bias": [1, 2]}):
    // indices with gaps, as nn.Sequential leaves around parameterless layers, stay as they are.
    let pth = fixtures_dir().join("gapped_indices.pth");
    let sd = read(&pth).unwrap();
    let keys: Vec<&String> = sd.keys().collect();
    assert_eq!(keys, ["features.1.weight", "features.3.bias"]);
    let w = sd["features.1.weight"].clone().try_to_vec::<f32>().unwrap();
    assert_eq!(w, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);

    // A safetensors header of 0x180 bytes: its first byte, 0x80, is also pickle's PROTO.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut header = r#"{"a.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_string();
    while header.len() < 0x180 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    assert_eq!(bytes[0], 0x80);
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(detect(&path).unwrap(), FileKind::Safetensors);
    let sd = read(&path).unwrap();
    assert_eq!(
        sd["a.weight"].clone().try_to_vec::<f32>().unwrap(),
        [1.5, -2.0]
    );
}
