//! Writing a cnnzoo model as a timm-keyed `.safetensors` file.

use std::collections::BTreeMap;
use std::path::Path;

use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use cnnzoo_models::Model;

use crate::error::InteropError;
use crate::mapping::table_for;

/// Writes `model`'s weights and BatchNorm statistics to `path` under timm's key names
/// (PyTorch layouts), atomically (temporary file, then rename), so that
/// `timm.create_model(name, checkpoint_path=path)` loads it.
pub fn save_timm_safetensors(model: &Model, path: &Path) -> Result<usize, InteropError> {
    let table = table_for(model);
    let mut renames = BTreeMap::new();
    for t in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let key = table
            .to_torch(&t.name)
            .ok_or_else(|| InteropError::Unmapped {
                path: path.to_path_buf(),
                family: table.family.into(),
                tensor: t.name.clone(),
            })?;
        renames.insert(t.name.clone(), key);
    }
    let count = renames.len();
    let tmp = path.with_extension("safetensors.part");
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .overwrite(true)
        .metadata("format", "pt")
        .metadata("producer", "cnnzoo");
    for (ours, key) in &renames {
        store = store.with_key_remapping(format!("^{}$", regex::escape(ours)), key);
    }
    model.save_into(&mut store).map_err(|e| InteropError::Io {
        path: tmp.clone(),
        reason: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(count)
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so that a failed
/// or interrupted write leaves no file that looks complete (and no temporary one on an error).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), InteropError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name else {
        return Err(InteropError::Io {
            path: path.to_path_buf(),
            reason: "not a file path".into(),
        });
    };
    let tmp = path.with_file_name(format!(".{name}.part"));
    let io = |p: &Path, e: std::io::Error| InteropError::Io {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}
