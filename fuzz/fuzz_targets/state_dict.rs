//! State dicts: safetensors, PyTorch zip and legacy pickle files (burn-store's readers behind
//! cnnzoo's format sniffing), then the load into a model with its checks.
#![no_main]

use std::sync::OnceLock;

use cnnzoo_interop::{LoadOptions, load_state_dict, state_dict};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cnnzoo-fuzz-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("weights.bin");
    std::fs::write(&path, data).unwrap();
    if let Ok(state) = state_dict::read(&path) {
        static MODEL: OnceLock<cnnzoo_models::Model> = OnceLock::new();
        let model = MODEL
            .get_or_init(|| {
                cnnzoo_models::create("resnet20", cnnzoo_models::ModelOptions::default())
                    .unwrap()
                    .init(&burn::tensor::Device::default())
            })
            .clone();
        let options = LoadOptions {
            non_strict: true,
            reset_classifier: false,
        };
        let _ = load_state_dict(model, state, &path, "resnet20", options);
    }
});
