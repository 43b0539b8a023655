//! Reading a state dict from `.safetensors` or PyTorch (`.pth` / `.pt` / `.bin`, zip or legacy
//! pickle) files, whatever the extension says, with burn-store's readers.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::tensor::TensorData;
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{ModuleStore, PytorchStore, SafetensorsStore};

use crate::error::InteropError;

/// Tensors by key, converted to f32.
pub type StateDict = BTreeMap<String, TensorData>;

/// Which reader a file needs, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// safetensors: a little-endian header length, then a JSON header.
    Safetensors,
    /// PyTorch's zip archive (`torch.save` since 1.6).
    TorchZip,
    /// PyTorch's legacy pickle stream.
    TorchLegacy,
}

/// Sniffs the format of `path`.
pub fn detect(path: &Path) -> Result<FileKind, InteropError> {
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(|e| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let n = file.read(&mut head).map_err(|e| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let bad = |reason: &str| InteropError::Format {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if n < 9 {
        return Err(bad("too short to be a safetensors or PyTorch file"));
    }
    // A safetensors header length can start with any byte (0x80 looks like a pickle
    // opcode), so it is recognised first, by a JSON header that fits in the file.
    let header_len = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
    let file_len = file.metadata().map_or(0, |m| m.len());
    if head[8] == b'{' && header_len >= 2 && header_len.saturating_add(8) <= file_len {
        return Ok(FileKind::Safetensors);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok(FileKind::TorchZip);
    }
    // Pickle protocol 2-5 opens with PROTO (0x80) and the protocol number.
    if head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Ok(FileKind::TorchLegacy);
    }
    Err(bad(
        "neither a safetensors file nor a PyTorch checkpoint (expected a safetensors header, a zip archive or a pickle stream)",
    ))
}

/// Prefixes of training checkpoints and wrappers, stripped when every kept key has one.
const WRAPPERS: &[&str] = &["state_dict.", "model.", "module."];

/// Reads every tensor of `path` (f32, keys as in the file minus checkpoint wrappers).
pub fn read(path: &Path) -> Result<StateDict, InteropError> {
    let kind = detect(path)?;
    let format = |reason: String| InteropError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let tensors: BTreeMap<String, PackTensor> = match kind {
        FileKind::Safetensors => SafetensorsStore::from_file(path)
            .get_all_tensors()
            .map_err(|e| format(format!("unreadable safetensors file: {e}")))?
            .clone(),
        // Keys as the file has them: burn-store would otherwise renumber Sequential indices
        // around parameterless layers (torchvision's `branch4.1` after a max pool becomes
        // `branch4.0`), which the mapping tables do not expect.
        FileKind::TorchZip | FileKind::TorchLegacy => PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .get_all_tensors()
            .map_err(|e| format(format!("unreadable PyTorch checkpoint: {e}")))?
            .clone(),
    };
    if tensors.is_empty() {
        return Err(format("holds no tensors".into()));
    }
    let mut keys: Vec<String> = tensors.keys().cloned().collect();
    let mut strip = String::new();
    for wrapper in WRAPPERS {
        // timm training checkpoints nest the weights under `state_dict` (and an EMA copy);
        // DataParallel prefixes `module.`.
        let inner: Vec<&String> = keys.iter().filter(|k| k.starts_with(wrapper)).collect();
        if !inner.is_empty() && (inner.len() == keys.len() || *wrapper == "state_dict.") {
            strip.push_str(wrapper);
            keys = inner
                .into_iter()
                .map(|k| k[wrapper.len()..].to_string())
                .collect();
        }
    }
    let mut out = StateDict::new();
    for (key, tensor) in tensors {
        let Some(short) = key.strip_prefix(&strip) else {
            continue;
        };
        let data = burn_store::bridge::into_data(tensor)
            .map_err(|e| format(format!("tensor '{key}' is damaged: {e}")))?;
        let data = if data.dtype() == burn::tensor::DType::F32 {
            data
        } else if data.dtype().is_float() {
            data.convert::<f32>()
        } else {
            // Integer buffers (BatchNorm's num_batches_tracked) carry no weights.
            continue;
        };
        out.insert(short.to_string(), data);
    }
    Ok(out)
}
