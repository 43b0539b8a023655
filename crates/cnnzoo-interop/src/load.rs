//! Loading a timm / torchvision state dict into a cnnzoo model through the mapping tables.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::TensorData;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter};
use cnnzoo_models::Model;

use crate::error::{InteropError, Mismatch, ShapeMismatch};
use crate::mapping::{Table, is_aux, is_classifier, table_for};
use crate::state_dict::{StateDict, read};

/// How strictly a state dict must fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load what matches and report the rest instead of failing.
    pub non_strict: bool,
    /// Keep the model's own (freshly initialised) classifier when the file's has another
    /// class count: fine-tuning.
    pub reset_classifier: bool,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors loaded.
    pub loaded: usize,
    /// Auxiliary-classifier tensors of the file that the model does not have (dropped, as
    /// torchvision does with `aux_logits=False`).
    pub dropped_aux: usize,
    /// Classifier tensors kept from the model's initialisation (`reset_classifier`).
    pub reset: Vec<String>,
    /// What did not fit (empty in strict mode, which fails instead).
    pub mismatch: Mismatch,
}

/// The model's tensors by PyTorch-convention path (BatchNorm `weight`/`bias`, linear weights
/// `[out, in]`), with their shapes.
pub fn expected_shapes(model: &Model) -> BTreeMap<String, Vec<usize>> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect()
}

/// Loads `path` into `model` (see [`load_state_dict`]).
pub fn load_file(
    model: Model,
    path: &Path,
    options: LoadOptions,
) -> Result<(Model, LoadReport), InteropError> {
    let state = read(path)?;
    load_state_dict(model, state, path, "the model", options)
}

/// Loads a state dict read from `path` into `model`: keys mapped by the model's family table,
/// every difference reported together, non-finite values refused.
pub fn load_state_dict(
    mut model: Model,
    state: StateDict,
    path: &Path,
    model_name: &str,
    options: LoadOptions,
) -> Result<(Model, LoadReport), InteropError> {
    let table: &Table = table_for(&model);
    let expected = expected_shapes(&model);
    let mut report = LoadReport::default();
    let mut mismatch = Mismatch::default();
    let mut accepted: Vec<(String, TensorData)> = Vec::new();
    let mut provided = std::collections::BTreeSet::new();
    let count = state.len();
    let first: Vec<String> = state.keys().take(3).cloned().collect();
    let mut non_finite = Vec::new();
    for (key, data) in state {
        let Some(ours) = table.to_cnnzoo(&key) else {
            mismatch.unexpected.push(key);
            continue;
        };
        let Some(want) = expected.get(&ours) else {
            if is_aux(&ours) {
                report.dropped_aux += 1;
            } else {
                mismatch.unexpected.push(key);
            }
            continue;
        };
        provided.insert(ours.clone());
        if *want != data.shape().to_vec() {
            if options.reset_classifier && is_classifier(&ours) {
                report.reset.push(key);
            } else {
                mismatch.shapes.push(ShapeMismatch {
                    key,
                    expected: want.clone(),
                    found: data.shape().to_vec(),
                });
            }
            continue;
        }
        // NaN or infinite values, magnitudes that overflow a forward pass, negative
        // variances: a damaged file, refused rather than loaded into NaN logits.
        let variance = key.ends_with("running_var");
        if data.as_slice::<f32>().is_ok_and(|v| {
            v.iter().any(|x| {
                !x.is_finite()
                    || x.abs() > cnnzoo_models::check::MAX_ABS_WEIGHT
                    || (variance && *x < 0.0)
            })
        }) {
            non_finite.push(key.clone());
        }
        accepted.push((ours, data));
    }
    if accepted.is_empty() && report.dropped_aux == 0 {
        return Err(InteropError::Foreign {
            path: path.to_path_buf(),
            count,
            family: table.family.into(),
            first: first.join(", "),
        });
    }
    if !non_finite.is_empty() {
        let shown: Vec<String> = non_finite.iter().take(5).cloned().collect();
        return Err(InteropError::NonFinite {
            path: path.to_path_buf(),
            keys: format!("{} tensor(s): {}", non_finite.len(), shown.join(", ")),
        });
    }
    for ours in expected.keys() {
        if !provided.contains(ours) {
            mismatch
                .missing
                .push(table.to_torch(ours).unwrap_or_else(|| ours.clone()));
        }
    }
    if !mismatch.is_empty() && !options.non_strict {
        let only_classifier = mismatch.missing.is_empty()
            && mismatch.unexpected.is_empty()
            && mismatch.shapes.iter().all(|s| {
                table
                    .to_cnnzoo(&s.key)
                    .is_some_and(|ours| is_classifier(&ours))
            });
        return Err(InteropError::Mismatch {
            path: path.to_path_buf(),
            model: model_name.to_string(),
            family: table.family.into(),
            reset: if only_classifier {
                " (only the classifier differs: --reset-classifier keeps the model's own)".into()
            } else {
                String::new()
            },
            mismatch: Box::new(mismatch),
        });
    }
    let tensors = accepted
        .into_iter()
        .map(|(name, data)| burn_store::bridge::from_data(data, name, None))
        .collect();
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if !result.errors.is_empty() {
        let reasons: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
        return Err(InteropError::Format {
            path: path.to_path_buf(),
            reason: format!("could not apply: {}", reasons.join("; ")),
        });
    }
    report.loaded = result.applied.len();
    report.mismatch = mismatch;
    Ok((model, report))
}
