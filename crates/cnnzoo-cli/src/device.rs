//! `--device` parsing: which compute devices this build can use.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Device names this build understands.
pub const AVAILABLE: &[&str] = &[
    "cpu",
    #[cfg(feature = "vulkan")]
    "vulkan[:N]",
    #[cfg(feature = "cuda")]
    "cuda[:N]",
    #[cfg(feature = "tch")]
    "libtorch[:N]",
    #[cfg(feature = "tch")]
    "libtorch-cpu",
];

/// The Burn device for a `--device` value, or an error listing what is available.
pub fn parse(name: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    let (kind, index) = match lower.split_once(':') {
        Some((k, i)) => (k, Some(i)),
        None => (lower.as_str(), None),
    };
    let index = match index {
        None => 0,
        Some(i) => match i.parse::<usize>() {
            Ok(i) => i,
            Err(_) => bail!("device '{name}': '{i}' is not a device index"),
        },
    };
    match kind {
        "cpu" | "flex" if index == 0 => Ok(Device::flex()),
        "cpu" | "flex" => bail!("device '{name}': the CPU has only index 0, got {index}"),
        #[cfg(feature = "vulkan")]
        "vulkan" => probe(
            name,
            Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index)),
        ),
        #[cfg(feature = "cuda")]
        "cuda" => probe(name, Device::cuda(index)),
        #[cfg(feature = "tch")]
        "libtorch" => libtorch::cuda(name, index),
        #[cfg(feature = "tch")]
        "libtorch-cpu" if index == 0 => probe(name, libtorch::cpu()),
        other if ["cuda", "vulkan", "libtorch", "libtorch-cpu"].contains(&other) => bail!(
            "device '{name}' is not compiled into this build (rebuild with `--features {}`); available: {}",
            if kind.starts_with("libtorch") {
                "tch"
            } else {
                kind
            },
            AVAILABLE.join(", ")
        ),
        // Burn has these runtimes but cnnzoo does not build them; Vulkan covers most GPUs.
        other if ["wgpu", "rocm", "metal"].contains(&other) => bail!(
            "device '{name}': cnnzoo has no {kind} build (its GPU features are `vulkan` and `cuda`); available: {}",
            AVAILABLE.join(", ")
        ),
        _ => bail!(
            "unknown device '{name}'; available: {}",
            AVAILABLE.join(", ")
        ),
    }
}

/// Runs one tiny operation on a GPU device: the runtimes initialise lazily and panic when the
/// adapter is missing, which becomes an error here instead of a crash later.
#[cfg(any(feature = "vulkan", feature = "cuda", feature = "tch"))]
fn probe(name: &str, device: Device) -> Result<Device> {
    let check = device.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(move || {
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &check);
        t.sum().into_scalar::<f32>()
    });
    std::panic::set_hook(previous);
    match outcome {
        Ok(v) if (v - 3.0).abs() < 1e-6 => Ok(device),
        Ok(v) => bail!("device '{name}' answered 1 + 2 = {v}: the driver is not usable"),
        Err(cause) => {
            let why = cause
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| cause.downcast_ref::<&str>().copied())
                .unwrap_or("no reason given");
            bail!(
                "device '{name}' is compiled in but could not be opened ({why}); available in this build: {}",
                AVAILABLE.join(", ")
            )
        }
    }
}

/// Burn's LibTorch backend (cuDNN and cuBLAS through PyTorch's own libraries).
#[cfg(feature = "tch")]
mod libtorch {
    use anyhow::{Result, bail};
    use burn::tensor::Device;

    /// The LibTorch CPU device.
    #[allow(deprecated)] // burn-tch is deprecated in Burn 0.22 but still the cuDNN route
    pub fn cpu() -> Device {
        Device::libtorch()
    }

    /// The LibTorch CUDA device `index`, with cuDNN's autotuner on (as timm's scripts and
    /// PyTorch users run it).
    #[allow(deprecated)]
    pub fn cuda(name: &str, index: usize) -> Result<Device> {
        if !tch::Cuda::is_available() {
            bail!(
                "device '{name}': LibTorch sees no CUDA device (is a driver present, and is this \
                 PyTorch's CUDA build on LD_LIBRARY_PATH?)"
            );
        }
        let count = tch::Cuda::device_count() as usize;
        if index >= count {
            bail!(
                "device '{name}': LibTorch sees {count} CUDA device(s), indices 0 to {}",
                count - 1
            );
        }
        tch::Cuda::cudnn_set_benchmark(true);
        super::probe(name, Device::libtorch_cuda(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_others_explain_themselves() {
        assert!(parse("cpu").is_ok());
        assert!(parse("CPU:0").is_ok());
        if !cfg!(feature = "cuda") {
            let e = parse("cuda:0").unwrap_err().to_string();
            assert!(e.contains("not compiled") && e.contains("cpu"), "{e}");
        }
        if !cfg!(feature = "tch") {
            let e = parse("libtorch:0").unwrap_err().to_string();
            assert!(e.contains("--features tch") && e.contains("cpu"), "{e}");
        }
        let e = parse("metal").unwrap_err().to_string();
        assert!(
            e.contains("no metal build") && !e.contains("--features metal"),
            "{e}"
        );
        let e = parse("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
        assert!(parse("cpu:3").is_err());
        let e = parse("cpu:x").unwrap_err().to_string();
        assert!(e.contains("not a device index"), "{e}");
    }
}
