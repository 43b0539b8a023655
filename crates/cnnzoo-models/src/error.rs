//! Errors raised while building, configuring or tracing a model.

use thiserror::Error;

/// Everything that can go wrong when a user names, configures or feeds a model.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// The name is not in the registry; `suggestions` holds the closest known names.
    #[error("unknown model '{name}'{}", did_you_mean(suggestions))]
    UnknownModel {
        /// The name the user gave.
        name: String,
        /// Registered names closest to it, best first.
        suggestions: Vec<String>,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration for {model}: {reason}")]
    InvalidConfig {
        /// The model or block being configured.
        model: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// The input does not fit the network (channels, or too small a spatial size).
    #[error("input {input} does not fit {model}: {reason}")]
    BadInput {
        /// The model being fed.
        model: String,
        /// The offending input shape, as CxHxW.
        input: String,
        /// What is wrong, in words (names the layer where the shape breaks).
        reason: String,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::from(" (run `cnnzoo list` for the known names)")
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}
