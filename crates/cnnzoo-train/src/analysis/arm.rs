//! An arm of a comparison (gradient flow, experiments): a registered model and the design
//! changes applied to it, written `MODEL[:key=value,...]` on the command line.

use cnnzoo_models::Overrides;
use serde::{Deserialize, Serialize};

/// One arm of a comparison: a registered model with design overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// Registered model name (residual family).
    pub model: String,
    /// Changes to its design.
    #[serde(default)]
    pub overrides: Overrides,
}

impl Arm {
    /// `model` or `model:act=sigmoid,norm=none`.
    pub fn label(&self) -> String {
        if self.overrides.is_empty() {
            self.model.clone()
        } else {
            format!("{}:{}", self.model, self.overrides.label())
        }
    }

    /// A name usable as a file stem.
    pub fn file_stem(&self) -> String {
        self.label()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

impl std::str::FromStr for Arm {
    type Err = String;
    /// Parses [`label`](Arm::label)'s syntax.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (model, overrides) = match s.split_once(':') {
            Some((m, o)) => (m, o.parse()?),
            None => (s, Overrides::default()),
        };
        if model.trim().is_empty() {
            return Err(format!("'{s}': no model name before ':'"));
        }
        Ok(Arm {
            model: model.trim().to_string(),
            overrides,
        })
    }
}
