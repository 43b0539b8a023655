//! One file per subcommand; each parses its arguments and calls the library.

pub mod bench;
pub mod common;
pub mod data;
pub mod design;
pub mod eval;
pub mod experiment;
pub mod experiment_forms;
pub mod experiment_lesion;
pub mod export;
pub mod gradflow;
pub mod list;
pub mod logits;
pub mod predict;
pub mod recipe;
pub mod se_stats;
pub mod summary;
pub mod train;
pub mod weights;

pub use common::DataArgs;

use anyhow::{Context, Result};
use burn::tensor::Device;
use cnnzoo_models::{Model, ModelOptions, ModelSpec, Summary, registry};

/// A model built from the registry, with its spec and the input it will be summarised for.
pub struct Built {
    /// The registry entry.
    pub spec: &'static ModelSpec,
    /// The built (lazily initialised) network.
    pub model: Model,
}

/// Builds a registered model by name.
pub fn build(name: &str, options: ModelOptions, device: &Device) -> Result<Built> {
    let spec = registry::spec(name)?;
    let config = registry::create(name, options)?;
    Ok(Built {
        spec,
        model: config.init(device),
    })
}

/// The summary of a built model for `input`, with the model name in the error.
pub fn summarize(built: &Built, input: [usize; 3]) -> Result<Summary> {
    built
        .model
        .summary(input)
        .map_err(|e| cnnzoo_models::ModelError::BadInput {
            model: built.spec.name.to_string(),
            input: crate::format::shape(&input),
            reason: e.to_string(),
        })
        .context("cannot summarise the model")
}
