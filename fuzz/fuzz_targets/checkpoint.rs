//! cnnzoo checkpoints: `state.json` (parsed and checked) and `model.bpk` (checksum, Burn's
//! reader, the weight checks). Input: a little-endian u32 length, that many bytes of
//! state.json, then model.bpk. The seed, a real checkpoint of a tiny network, is written to
//! `seeds/checkpoint/` on first start.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::Module;
use cnnzoo_models::{Model, ModelConfig, ModelOptions};
use cnnzoo_train::checkpoint::{load_model, parse_state};
use libfuzzer_sys::fuzz_target;

/// A residual network small enough that its checkpoint is a few kilobytes.
fn tiny() -> ModelConfig {
    let mut config = cnnzoo_models::create("resnet20", ModelOptions::default()).unwrap();
    if let ModelConfig::ResNet(c) = &mut config {
        c.widths = vec![2, 4];
        c.layers = vec![1, 1];
        c.stem_width = 2;
        c.num_classes = 3;
    }
    config
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cnnzoo-fuzz-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn model() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL
        .get_or_init(|| tiny().init(&burn::tensor::Device::default()))
        .clone()
}

/// Writes the seed: a real checkpoint folder's two files in the target's input format.
fn write_seed() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/checkpoint");
    let seed = seeds.join("tiny");
    if seed.exists() {
        return;
    }
    let dir = scratch().join("seed");
    std::fs::create_dir_all(&dir).unwrap();
    model().save_file(dir.join("model.bpk")).unwrap();
    let config = cnnzoo_train::TrainConfig::new(
        "resnet20",
        "fashion-mnist",
        PathBuf::from("data"),
        PathBuf::from("runs/x"),
    );
    let state = cnnzoo_train::checkpoint::RunState {
        config,
        model: tiny(),
        epoch: 0,
        batch: 1,
        step: 1,
        partial: Default::default(),
        history: Vec::new(),
        best_top1: 0.0,
        classes: vec!["a".into(), "b".into(), "c".into()],
        loss_scaler: None,
        checksums: Default::default(),
    };
    cnnzoo_train::checkpoint::write_state(&dir, &state).unwrap();
    let text = std::fs::read(dir.join("state.json")).unwrap();
    let bpk = std::fs::read(dir.join("model.bpk")).unwrap();
    let mut input = (text.len() as u32).to_le_bytes().to_vec();
    input.extend_from_slice(&text);
    input.extend_from_slice(&bpk);
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(seed, input).unwrap();
}

fuzz_target!(
    init: write_seed(),
    |data: &[u8]| {
        if data.len() < 4 {
            return;
        }
        let n = (u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize)
            .min(data.len() - 4);
        let (state, bpk) = data[4..].split_at(n);
        let _ = parse_state(state);
        let dir = scratch().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), state).unwrap();
        std::fs::write(dir.join("model.bpk"), bpk).unwrap();
        if let Ok(m) = load_model(model(), &dir.join("model.bpk")) {
            assert!(cnnzoo_models::check_weights(&m).is_ok());
            // A model that loads runs: its input check, then a forward pass.
            if m.logits_for([3, 8, 8]).is_ok() {
                let x = burn::tensor::Tensor::<4>::zeros([1, 3, 8, 8], &Default::default());
                let _ = m.valid().forward(x);
            }
        }
    }
);
