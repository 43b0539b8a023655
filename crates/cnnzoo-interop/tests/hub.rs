//! The hub client against a real HTTP server on loopback, started by each test
//! (`hub::test_server`: tiny_http answering as the Hugging Face hub does). The repository holds
//! a real small model (resnet20's timm-keyed safetensors) and a timm `config.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use cnnzoo_interop::hub::test_server::{COMMIT, Mode, serve, sha256};
use cnnzoo_interop::hub::{Hub, HubError};
use cnnzoo_interop::predict::Interpolation;
use cnnzoo_interop::pretrained::{fetch_repo, load_weights, read_config};
use cnnzoo_interop::{InteropError, save_timm_safetensors};
use cnnzoo_models::{ModelOptions, create};

const REPO: &str = "timm/resnet20.test_tag";

/// resnet20's real weights file and a timm config.json.
fn repo_files(dir: &Path) -> HashMap<String, Vec<u8>> {
    let model = create("resnet20", ModelOptions::default())
        .unwrap()
        .init(&Device::flex());
    let path = dir.join("src.safetensors");
    save_timm_safetensors(&model, &path).unwrap();
    let config = serde_json::json!({
        "architecture": "resnet20",
        "num_classes": 10,
        "pretrained_cfg": {
            "tag": "test_tag", "input_size": [3, 32, 32], "interpolation": "bilinear",
            "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
            "num_classes": 10
        }
    });
    HashMap::from([
        (
            "model.safetensors".to_string(),
            std::fs::read(&path).unwrap(),
        ),
        ("config.json".to_string(), config.to_string().into_bytes()),
        (
            "resnet20-XXXX.pth".to_string(),
            std::fs::read(&path).unwrap(),
        ),
    ])
}

fn hub(endpoint: &str, dir: &Path) -> Hub {
    Hub {
        endpoint: endpoint.to_string(),
        cache: dir.join("hf/hub"),
        url_cache: dir.join("torch/hub/checkpoints"),
        offline: false,
        progress: false,
        token: None,
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn first_download_then_cache_hit_then_offline() {
    let dir = tempfile::tempdir().unwrap();
    let files = repo_files(dir.path());
    let weights = files["model.safetensors"].clone();
    let server = serve(REPO, files);
    let h = hub(&server.url, dir.path());

    let (path, config) = fetch_repo(&h, REPO, "main").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    let repo_dir = dir.path().join("hf/hub/models--timm--resnet20.test_tag");
    assert_eq!(
        path,
        repo_dir
            .join("snapshots")
            .join(COMMIT)
            .join("model.safetensors")
    );
    // huggingface_hub's layout: a relative link into blobs/<sha256>, and refs/main.
    let target = std::fs::read_link(&path).unwrap();
    assert_eq!(target, Path::new("../../blobs").join(sha256(&weights)));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    assert_eq!(config.architecture.as_deref(), Some("resnet20"));
    let p = config.preprocess.unwrap();
    assert_eq!((p.size, p.interpolation), (32, Interpolation::Bilinear));
    assert_eq!(p.mean, [0.5; 3]);
    let model = load_weights("resnet20", &path, &Device::flex()).unwrap();
    assert_eq!(model.summary([3, 32, 32]).unwrap().params(), 269_722);
    let first = server.take_log();
    assert!(
        first.iter().any(|l| l.starts_with("GET /cdn/")),
        "{first:?}"
    );

    // Cache hit: the hub is asked for metadata, the content is not downloaded again.
    let (again, _) = fetch_repo(&h, REPO, "main").unwrap();
    assert_eq!(again, path);
    let second = server.take_log();
    assert!(!second.iter().any(|l| l.starts_with("GET")), "{second:?}");

    // Offline: no request at all.
    let offline = Hub {
        offline: true,
        ..h.clone()
    };
    let (cached, _) = fetch_repo(&offline, REPO, "main").unwrap();
    assert_eq!(cached, path);
    assert!(server.take_log().is_empty());

    // A server that cannot be reached: the cached copy is used, as huggingface_hub does.
    let gone = Hub {
        endpoint: "http://127.0.0.1:9".to_string(),
        ..h
    };
    assert_eq!(fetch_repo(&gone, REPO, "main").unwrap().0, path);
}

#[test]
fn missing_things_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(REPO, repo_files(dir.path()));
    let h = hub(&server.url, dir.path());
    let e = h.file("timm/resnet50.no_such_tag", "main", "model.safetensors");
    assert!(matches!(e, Err(HubError::RepoNotFound { .. })), "{e:?}");
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("timm/resnet50.no_such_tag")
    );
    let e = h.file(REPO, "main", "pytorch_model.bin").unwrap_err();
    assert!(matches!(e, HubError::EntryNotFound { .. }), "{e}");
    assert!(e.to_string().contains("pytorch_model.bin"), "{e}");

    let offline = Hub {
        offline: true,
        ..h.clone()
    };
    let e = offline.file(REPO, "main", "model.safetensors").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, HubError::NotCached { .. }), "{text}");
    assert!(
        text.contains("offline") && text.contains("hf/hub"),
        "{text}"
    );

    let gone = Hub {
        endpoint: "http://127.0.0.1:9".to_string(),
        ..h
    };
    let e = InteropError::from(gone.file(REPO, "main", "config.json").unwrap_err());
    let text = e.to_string();
    assert!(
        text.contains("cannot reach http://127.0.0.1:9") && text.contains("HF_ENDPOINT"),
        "{text}"
    );
}

#[test]
fn a_corrupted_download_is_an_error_and_nothing_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(REPO, repo_files(dir.path()));
    let h = hub(&server.url, dir.path());
    server.set(Mode::Corrupt);
    let e = h.file(REPO, "main", "model.safetensors").unwrap_err();
    assert!(matches!(e, HubError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("sha256"), "{e}");
    let left = files_under(&dir.path().join("hf"));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(h.cached(REPO, "main", "model.safetensors").is_none());
}

#[test]
fn a_dropped_connection_keeps_only_a_partial_file_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let files = repo_files(dir.path());
    let weights = files["model.safetensors"].clone();
    let server = serve(REPO, files);
    let h = hub(&server.url, dir.path());
    server.set(Mode::Drop);
    let e = h.file(REPO, "main", "model.safetensors").unwrap_err();
    assert!(matches!(e, HubError::Interrupted { .. }), "{e}");
    assert!(e.to_string().contains("run again to resume"), "{e}");
    let left = files_under(&dir.path().join("hf"));
    assert!(
        left.iter()
            .all(|p| p.to_string_lossy().ends_with(".incomplete")),
        "a file that looks complete: {left:?}"
    );
    assert!(h.cached(REPO, "main", "model.safetensors").is_none());

    server.set(Mode::Normal);
    server.take_log();
    let path = h.file(REPO, "main", "model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    let log = server.take_log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /cdn/") && l.contains("bytes=")),
        "no resume: {log:?}"
    );
}

#[test]
fn direct_urls_are_cached_and_their_hash_prefix_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = repo_files(dir.path());
    let data = files.remove("resnet20-XXXX.pth").unwrap();
    let prefix = &sha256(&data)[..8];
    let good = format!("resnet20-{prefix}.pth");
    files.insert(good.clone(), data.clone());
    files.insert("resnet20-00000000.pth".to_string(), data.clone());
    let server = serve(REPO, files);
    let h = hub(&server.url, dir.path());

    let path = h.url(&format!("{}/models/{good}", server.url)).unwrap();
    assert_eq!(path, dir.path().join("torch/hub/checkpoints").join(&good));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    server.take_log();
    h.url(&format!("{}/models/{good}", server.url)).unwrap();
    assert!(server.take_log().is_empty(), "downloaded twice");

    for bad in ["", ".."] {
        let e = h.url(&format!("{}/models/{bad}", server.url)).unwrap_err();
        assert!(matches!(e, HubError::BadUrl { .. }), "{e}");
        assert!(e.to_string().contains("names no file"), "{e}");
    }
    let e = h
        .url(&format!("{}/models/resnet20-00000000.pth", server.url))
        .unwrap_err();
    assert!(matches!(e, HubError::Corrupt { .. }), "{e}");
    assert!(
        !dir.path()
            .join("torch/hub/checkpoints/resnet20-00000000.pth")
            .exists()
    );
}

#[test]
fn config_json_gives_the_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"architecture": "resnet50", "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bicubic",
        "crop_pct": 0.95, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}"#,
    )
    .unwrap();
    let c = read_config(&path).unwrap();
    let p = c.preprocess.unwrap();
    assert_eq!(
        (p.size, p.crop_pct, p.interpolation),
        (224, 0.95, Interpolation::Bicubic)
    );
    std::fs::write(&path, "not json").unwrap();
    let e = read_config(&path).unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("not a timm config.json"),
        "{e}"
    );
}
