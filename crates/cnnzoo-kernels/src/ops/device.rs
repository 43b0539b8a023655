//! Which devices run cnnzoo's kernels.

use burn::tensor::Device;

/// Whether `device` runs inference only: a Flex device without autodiff. `Device`'s equality
/// ignores autodiff, so `device == Device::flex()` alone also holds for training's device,
/// whose autodiff versions of the inference-only operations are Burn's (slow) defaults.
pub(crate) fn inference_device(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// Whether tensors on `device` run cnnzoo's kernels: Flex devices, with or without autodiff.
pub fn uses_kernels(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}
