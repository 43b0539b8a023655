//! Refusing work that cannot fit in memory before allocating it: a lower bound on what a batch
//! needs, from the model's per-layer summary, against what the machine (or its container)
//! has free. Without it an oversized batch dies in the allocator with no explanation.

use cnnzoo_models::Summary;

use crate::error::TrainError;

/// Bytes a batch of `batch` samples needs at least: every layer output kept for the backward
/// pass when `training` (plus weights, gradients and optimiser state), or the two largest
/// live activations in inference (plus weights).
pub fn lower_bound(summary: &Summary, batch: usize, training: bool) -> u128 {
    let per_sample: u128 = if training {
        summary
            .layers
            .iter()
            .map(|r| r.output.iter().map(|&d| d as u128).product::<u128>())
            .sum()
    } else {
        2 * summary
            .layers
            .iter()
            .map(|r| r.output.iter().map(|&d| d as u128).product::<u128>())
            .max()
            .unwrap_or(0)
    };
    let params = u128::from(summary.params());
    let weights = if training { 4 * params } else { params };
    4 * (per_sample.saturating_mul(batch as u128) + weights)
}

/// Bytes of memory free for this process: the kernel's `MemAvailable`, capped by the
/// cgroup's limit when it runs in a container. `None` where neither can be read.
pub fn available() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let host = meminfo.as_deref().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u128>().ok())
            .map(|kib| kib * 1024)
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u128>().ok())
    };
    let cgroup = match (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        (Some(max), Some(used)) => Some(max.saturating_sub(used)),
        _ => None,
    };
    match (host, cgroup) {
        (Some(h), Some(c)) => Some(h.min(c)),
        (h, c) => h.or(c),
    }
}

fn gib(bytes: u128) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// Refuses a batch whose lower bound exceeds the free memory, with both numbers and what to
/// change. `what` names the work ("training resnet50 at batch 1000000").
pub fn check_fits(
    summary: &Summary,
    batch: usize,
    training: bool,
    what: &str,
) -> Result<(), TrainError> {
    let needed = lower_bound(summary, batch, training);
    match available() {
        Some(free) if needed > free => Err(TrainError::Invalid(format!(
            "{what} needs at least {:.1} GiB of memory, {:.1} GiB is free: use a smaller batch{}",
            gib(needed),
            gib(free),
            if training { " size" } else { "" }
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnzoo_models::ModelOptions;

    #[test]
    fn the_bound_grows_with_the_batch_and_refuses_the_impossible() {
        let model = cnnzoo_models::create("resnet20", ModelOptions::default())
            .unwrap()
            .init(&burn::tensor::Device::default());
        let s = model.summary([3, 32, 32]).unwrap();
        let one = lower_bound(&s, 1, true);
        // Weights alone: 269,722 parameters, four copies of f32.
        assert!(one > 4 * 4 * 269_722);
        assert!(lower_bound(&s, 2, true) > one);
        assert!(lower_bound(&s, 1, false) < one);
        // resnet20's first stage alone holds 16x32x32 floats per layer output.
        assert!(lower_bound(&s, 1000, true) > 1000 * 4 * 16 * 32 * 32);
        if available().is_some() {
            let e = check_fits(&s, usize::MAX / 2, true, "training resnet20").unwrap_err();
            assert!(e.to_string().contains("GiB is free"), "{e}");
            check_fits(&s, 2, true, "training resnet20").unwrap();
        }
    }
}
