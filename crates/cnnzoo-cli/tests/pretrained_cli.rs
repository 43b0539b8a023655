//! `predict` and `export` with `--pretrained`, end to end through the binary against a
//! hub-shaped server on loopback (`HF_ENDPOINT`), with the cache in a temporary `HF_HUB_CACHE`:
//! first download, then offline from the cache, then clear errors with an empty cache or an
//! unknown tag.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use burn::tensor::Device;
use cnnzoo_interop::hub::test_server::serve;
use cnnzoo_models::{ModelOptions, create};

fn cnnzoo_env(args: &[&str], env: &[(&str, &Path)], endpoint: &str) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnzoo"));
    cmd.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the cnnzoo binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn predict_and_export_with_pretrained_weights_from_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    // resnet18.a1_in1k's repository, holding cnnzoo-made resnet18 weights in timm's layout.
    let model = create("resnet18", ModelOptions::default())
        .unwrap()
        .init(&Device::flex());
    let weights = dir.path().join("w.safetensors");
    cnnzoo_interop::save_timm_safetensors(&model, &weights).unwrap();
    let config = serde_json::json!({
        "architecture": "resnet18", "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 64, 64], "interpolation": "bicubic",
            "crop_pct": 0.95, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    });
    let files = HashMap::from([
        (
            "model.safetensors".to_string(),
            std::fs::read(&weights).unwrap(),
        ),
        ("config.json".to_string(), config.to_string().into_bytes()),
    ]);
    let server = serve("timm/resnet18.a1_in1k", files);
    let image = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cnnzoo-interop/tests/fixtures/preprocess/image.jpg");
    let cache = dir.path().join("hub");
    let env = [("HF_HUB_CACHE", cache.as_path())];
    let img = image.to_str().unwrap();

    let args = [
        "predict",
        "--model",
        "resnet18.a1_in1k",
        "--pretrained",
        "--json",
        img,
    ];
    let (ok, out, err) = cnnzoo_env(&args, &env, &server.url);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["top"].as_array().unwrap().len(), 5, "{out}");
    assert!(
        cache
            .join("models--timm--resnet18.a1_in1k/refs/main")
            .is_file()
    );

    // Offline: from the cache, no server needed.
    drop(server);
    let offline = [args.as_slice(), &["--offline"]].concat();
    let (ok, again, err) = cnnzoo_env(&offline, &env, "http://127.0.0.1:9");
    assert!(ok, "{err}");
    assert_eq!(again, out);
    let onnx = dir.path().join("r18.onnx");
    let (ok, text, err) = cnnzoo_env(
        &[
            "export",
            "--model",
            "resnet18",
            "--pretrained",
            "--offline",
            "--input-size",
            "64",
            "--out",
            onnx.to_str().unwrap(),
        ],
        &env,
        "http://127.0.0.1:9",
    );
    assert!(ok && onnx.is_file(), "{text}{err}");

    // An empty cache offline, an unreachable hub, an unknown tag: errors that say what to do.
    let empty = dir.path().join("empty");
    let env = [("HF_HUB_CACHE", empty.as_path())];
    let (ok, _, err) = cnnzoo_env(&offline, &env, "http://127.0.0.1:9");
    assert!(
        !ok && err.contains("offline") && err.contains("empty"),
        "{err}"
    );
    let (ok, _, err) = cnnzoo_env(&args, &env, "http://127.0.0.1:9");
    assert!(!ok && err.contains("cannot reach"), "{err}");
    let bad = [
        "predict",
        "--model",
        "resnet18.b7_in1k",
        "--pretrained",
        img,
    ];
    let (ok, _, err) = cnnzoo_env(&bad, &env, "http://127.0.0.1:9");
    assert!(
        !ok && err.contains("no tag 'b7_in1k'; closest known: resnet18."),
        "{err}"
    );
}
