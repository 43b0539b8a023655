//! `--device` parsing: which compute devices this build can use.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Device names this build understands.
pub const AVAILABLE: &[&str] = &["cpu"];

/// The Burn device for a `--device` value, or an error listing what is available.
pub fn parse(name: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    let (kind, index) = match lower.split_once(':') {
        Some((k, i)) => (k, Some(i)),
        None => (lower.as_str(), None),
    };
    match (kind, index) {
        ("cpu" | "flex", None | Some("0")) => Ok(Device::flex()),
        ("cpu" | "flex", Some(i)) => bail!("device '{name}': the CPU has only index 0, got {i}"),
        ("cuda" | "vulkan" | "wgpu" | "rocm" | "metal", _) => bail!(
            "device '{name}' is not compiled into this build; available: {}",
            AVAILABLE.join(", ")
        ),
        _ => bail!(
            "unknown device '{name}'; available: {}",
            AVAILABLE.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_others_explain_themselves() {
        assert!(parse("cpu").is_ok());
        assert!(parse("CPU:0").is_ok());
        let e = parse("cuda:0").unwrap_err().to_string();
        assert!(e.contains("not compiled") && e.contains("cpu"), "{e}");
        let e = parse("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
        assert!(parse("cpu:3").is_err());
    }
}
