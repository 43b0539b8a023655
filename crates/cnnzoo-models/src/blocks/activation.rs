//! The non-linearity after a normalised convolution, selectable so that the vanishing-gradient
//! studies can swap ReLU for sigmoid or tanh without touching the networks.

use burn::tensor::{Tensor, activation};

use crate::graph::{self, Graph, Value};
use crate::summary::join;
use serde::{Deserialize, Serialize};

/// The non-linearity after a normalised convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x): the default, and what keeps gradients from vanishing.
    #[default]
    Relu,
    /// 1 / (1 + e^-x): saturates; used to show vanishing gradients.
    Sigmoid,
    /// tanh(x): saturates, zero-centred.
    Tanh,
}

impl Activation {
    /// Applies the non-linearity element-wise.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => activation::relu(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::Tanh => activation::tanh(x),
        }
    }

    /// Appends this non-linearity to a traced graph, named `prefix.relu` (or sigmoid, tanh).
    pub fn trace(self, prefix: &str, x: Value, g: &mut Graph) -> Value {
        let op = match self {
            Activation::Relu => graph::Activation::Relu,
            Activation::Sigmoid => graph::Activation::Sigmoid,
            Activation::Tanh => graph::Activation::Tanh,
        };
        g.activation(&join(prefix, self.name()), op, x)
    }

    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            other => Err(format!(
                "unknown activation '{other}' (expected relu, sigmoid or tanh)"
            )),
        }
    }
}
