//! Building blocks shared by every network of the family.

pub mod activation;
pub mod conv_bn_act;
pub mod dense;
pub mod drop_path;
pub mod head;
pub mod inception;
pub mod inception_v4;
pub mod layers;
pub mod pool;
pub mod residual;
pub mod squeeze_excite;
pub mod stem;

pub use activation::Activation;
pub use conv_bn_act::{BnActConv, ConvBnAct, ConvBnActConfig, Norm, UnitTap, no_tap};
pub use drop_path::DropPath;
pub use head::{Head, HeadKind};
pub use pool::{Pool2d, PoolKind};
pub use residual::{BlockKind, ResidualBlock, ResidualBlockConfig, ShortcutKind};
pub use squeeze_excite::{SePosition, SqueezeExcite, SqueezeExciteConfig};
pub use stem::{Stem, StemKind};
