//! The weight commands end to end through the binary: `logits` on a PyTorch checkpoint,
//! `export` to timm-keyed safetensors and back, and clear errors for bad input.

mod common;

use common::cnnzoo;
use std::path::{Path, PathBuf};

fn checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cnnzoo-interop/tests/fixtures/resnet20_f16.pth")
}

/// A float32 C-order .npy file, written by hand so the test checks the reader.
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(std::string::ToString::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The header and the float32 payload of a .npy file.
fn read_npy(path: &Path) -> (String, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8(bytes[10..10 + len].to_vec()).unwrap();
    let values = bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (header, values)
}

#[test]
fn logits_of_a_pytorch_checkpoint_survive_export_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let values: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    write_npy(&x, &[2, 3, 32, 32], &values);
    let y1 = dir.path().join("y1.npy");
    let ckpt = checkpoint();
    let (ok, _, err) = run_logits("resnet20", &ckpt, &x, &y1, &[]);
    assert!(ok, "{err}");
    let (header, logits) = read_npy(&y1);
    assert!(header.contains("(2, 10"), "{header}");
    assert!(logits.iter().all(|v| v.is_finite()));
    assert!(logits.iter().any(|v| v.abs() > 1e-3), "{logits:?}");

    let exported = dir.path().join("r20.safetensors");
    let (ok, out, err) = cnnzoo(&[
        "export",
        "--model",
        "resnet20",
        "--weights",
        ckpt.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("97 tensors"), "{out}{err}");
    let y2 = dir.path().join("y2.npy");
    let (ok, _, err) = run_logits("resnet20", &exported, &x, &y2, &["--fuse-bn"]);
    assert!(ok, "{err}");
    let (_, again) = read_npy(&y2);
    let scale = logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in logits.iter().zip(&again) {
        assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
    }
}

/// `cnnzoo logits` of `model` with `weights` on `input`, writing `output`, plus `extra` flags.
fn run_logits(
    model: &str,
    weights: &Path,
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "logits",
        "--model",
        model,
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend(extra);
    cnnzoo(&args)
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint();
    let flat = dir.path().join("flat.npy");
    write_npy(&flat, &[4, 5], &[0.0; 20]);
    let (ok, _, err) = run_logits("resnet20", &ckpt, &flat, Path::new("/dev/null"), &[]);
    assert!(!ok && err.contains("[N, C, H, W]"), "{err}");
    let (ok, _, err) = run_logits("resnet18", &ckpt, &flat, Path::new("/dev/null"), &[]);
    assert!(!ok && err.contains("[N, C, H, W]"), "{err}");
    let x = dir.path().join("x.npy");
    write_npy(&x, &[1, 3, 32, 32], &[0.5; 3 * 32 * 32]);
    let (ok, _, err) = run_logits("resnet56", &ckpt, &x, Path::new("/dev/null"), &[]);
    assert!(!ok && err.contains("missing from the file"), "{err}");
    let (ok, _, err) = cnnzoo(&[
        "export",
        "--model",
        "resnet20",
        "--weights",
        "/no/such/file.pth",
        "--out",
        "x.safetensors",
    ]);
    assert!(!ok && err.contains("/no/such/file.pth"), "{err}");
}

#[test]
fn export_writes_onnx_by_extension_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint();
    let out = dir.path().join("r20.onnx");
    let args = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "export".to_string(),
            "--model".into(),
            "resnet20".into(),
            "--weights".into(),
            ckpt.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_string()));
        a
    };
    let run = |a: Vec<String>| cnnzoo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (ok, text, err) = run(args(&out, &["--fuse-bn", "--batch", "2"]));
    assert!(ok, "{err}");
    assert!(
        text.contains("ONNX opset 17") && text.contains("[2, 3, 32, 32]"),
        "{text}"
    );
    let bytes = std::fs::read(&out).unwrap();
    // An ONNX ModelProto starts with its ir_version field (field 1, varint).
    assert_eq!(bytes[0], 0x08, "not an ONNX protobuf");
    assert!(bytes.windows(6).any(|w| w == b"cnnzoo"));
    let (ok, _, err) = run(args(&dir.path().join("r20.bin"), &[]));
    assert!(!ok && err.contains("--format"), "{err}");
    let (ok, _, err) = run(args(&dir.path().join("no/dir/r20.onnx"), &[]));
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, _, err) = run(args(&dir.path().join("x.onnx"), &["--opset", "7"]));
    assert!(!ok && err.contains("opset 7"), "{err}");
    let (ok, _, err) = run(args(&dir.path().join("x.onnx"), &["--input-size", "0"]));
    assert!(!ok && err.contains("does not fit"), "{err}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        vec![std::ffi::OsString::from("r20.onnx")],
        "left behind"
    );
}
