//! Inference's Winograd-transformed weights, kept from call to call.
//!
//! Transforming a 3x3 convolution's weights for Winograd writes 4 times the kernel's size
//! (9.4 MB for a 256-channel layer); doing it on every call made ResNet-50's 256-channel
//! 14x14 layer at batch 8 take 14.9 ms against 11.0 ms with the transform kept (medians of
//! alternating pairs, results/winograd_bound.md). At inference the weights do not change, so the
//! transformed copy is kept, keyed by the weight tensor's storage. The key is safe because an
//! entry holds a clone of the tensor: Flex shares storage between clones and copies it
//! before writing to storage that is shared (copy on write), so the storage an entry names
//! can be neither changed nor freed and reused while the entry exists. An entry whose tensor
//! nothing else holds any more (the network was dropped) is removed at the next lookup.

use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;

/// Most bytes of transformed weights kept: ResNet-50 needs about 130 MiB; beyond this, layers
/// are computed as if nothing were kept.
const CAPACITY: usize = 256 << 20;

struct Entry {
    /// A clone of the weight tensor: its storage and layout are the key.
    weight: FlexTensor,
    transformed: Arc<Vec<f32>>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Whether `a` and `b` are views of the same storage with the same layout.
fn same(a: &FlexTensor, b: &FlexTensor) -> bool {
    a.dtype() == b.dtype() && a.layout() == b.layout() && Arc::ptr_eq(&a.data_arc(), &b.data_arc())
}

/// The transform of `weight` made by `transform` (which must depend on nothing but the
/// weight's values), from the cache or made now and kept; `None` when keeping `len` more values
/// would exceed the cache's capacity (the caller then takes a path that needs no transform).
pub(crate) fn transformed(
    weight: &FlexTensor,
    len: usize,
    transform: impl FnOnce() -> Vec<f32>,
) -> Option<Arc<Vec<f32>>> {
    {
        let mut cache = CACHE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|e| !e.weight.is_unique());
        if let Some(e) = cache.iter().find(|e| same(&e.weight, weight)) {
            return Some(Arc::clone(&e.transformed));
        }
        let held: usize = cache.iter().map(|e| e.transformed.len() * 4).sum();
        if held + len * 4 > CAPACITY {
            return None;
        }
    }
    // Transformed without the lock held: another worker's layers need not wait. Two calls
    // racing on one weight each make a copy, and the first kept serves every later call.
    let t = Arc::new(transform());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = cache.iter().find(|e| same(&e.weight, weight)) {
        return Some(Arc::clone(&e.transformed));
    }
    cache.push(Entry {
        weight: weight.clone(),
        transformed: Arc::clone(&t),
    });
    Some(t)
}

/// Bytes of transformed weights kept now (for tests and diagnostics), after removing entries
/// whose tensor nothing else holds.
pub fn cached_bytes() -> usize {
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.retain(|e| !e.weight.is_unique());
    cache.iter().map(|e| e.transformed.len() * 4).sum()
}
