//! Design-override flags shared by `train` and `gradflow`.

use cnnzoo_models::Overrides;
use cnnzoo_models::blocks::squeeze_excite::SePosition;
use cnnzoo_models::blocks::{Activation, Norm, ShortcutKind};

/// Changes to a residual network's design (flattened into a command's arguments).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DesignFlags {
    /// Non-linearity: relu, sigmoid or tanh.
    #[arg(long)]
    act: Option<Activation>,
    /// Normalisation: batchnorm or none.
    #[arg(long)]
    norm: Option<Norm>,
    /// Shortcut: A (zero-pad), B (projection where the shape changes), C (all), none.
    #[arg(long)]
    shortcut: Option<ShortcutKind>,
    /// SE reduction ratio (adds SE units to a network without them).
    #[arg(long)]
    se_reduction: Option<usize>,
    /// SE position: standard, pre, post, identity.
    #[arg(long)]
    se_position: Option<SePosition>,
    /// Rounding of the SE reduced width (timm: 8; 1 keeps channels / r).
    #[arg(long)]
    se_divisor: Option<usize>,
    /// Pre-activation order (BN -> act -> conv, nothing after the addition).
    #[arg(long)]
    preact: bool,
    /// Dropout between the convolutions of every block (the WRN paper's), in [0, 1).
    #[arg(long, value_name = "P")]
    block_dropout: Option<f64>,
    /// Stochastic depth: drop a sample's residual branch in training with a probability rising
    /// linearly to RATE at the deepest block (timm's drop_path_rate).
    #[arg(long, value_name = "RATE")]
    drop_path: Option<f64>,
}

impl DesignFlags {
    /// The overrides these flags ask for.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            act: self.act,
            norm: self.norm,
            shortcut: self.shortcut,
            se_reduction: self.se_reduction,
            se_position: self.se_position,
            se_divisor: self.se_divisor,
            preact: self.preact.then_some(true),
            block_dropout: self.block_dropout,
            drop_path: self.drop_path,
        }
    }
}
