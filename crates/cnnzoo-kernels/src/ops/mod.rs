//! The kernels as Burn operations, one module per operation. Each holds the operation's
//! backend-extension trait (whose default methods are the composition from Burn's operations
//! that every other backend runs), its Flex implementation on cnnzoo's kernels, its backward
//! under autodiff, and the public function the networks call, which picks the path from the
//! tensor's device.

pub mod batch_norm;
pub mod conv;
mod device;
mod flex;
pub mod pool;
pub mod residual;
pub mod shortcut;
pub mod squeeze_excite;

pub use batch_norm::{BatchNormOps, batch_norm, batch_norm_train};
#[cfg(feature = "tch")]
pub use batch_norm::{TorchBatchNorm, batch_norm_mode};
pub use conv::{ConvOps, conv2d, conv2d_add_relu, conv2d_relu};
pub use device::uses_kernels;
pub use pool::{PoolOps, max_pool2d};
pub use residual::{ResidualOps, add_relu, scale_add_relu};
pub use shortcut::{ShortcutOps, zero_pad_shortcut};
pub use squeeze_excite::{SqueezeExciteOps, se_scale_add_relu};
