//! Output buffers filled in parallel without a serial zeroing pass first.
//!
//! `vec![0.0; n]` zeroes (or page-faults in) the whole buffer on the calling thread while
//! rayon's workers wait; for a training step's activation-sized outputs that was a tenth of
//! the step. Here each worker writes its own chunk directly ([`par_written`]), or zeroes only
//! the chunk it is about to accumulate into, while it is in cache ([`zeroed`]). A reduction over
//! the batch (a weight gradient) sums one partial buffer per worker
//! ([`sum_over_image_runs`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A pointer to an output buffer that workers write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct Shared(pub(crate) *mut MaybeUninit<f32>);
// SAFETY: the users write disjoint elements from each worker (distinct tiles, columns or
// channels) and nothing reads the buffer until every worker has finished.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Elements `at..at + len` of the buffer.
    ///
    /// # Safety
    /// They must lie inside the buffer, and no other worker may touch them meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, at: usize, len: usize) -> &mut [MaybeUninit<f32>] {
        // SAFETY: as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// An uninitialised buffer of `len` values, to be handed out chunk by chunk with [`zeroed`]
/// and finished with [`assume_init`].
pub(crate) fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit needs no initialisation; the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// Zeroes `chunk` and returns it as initialised values.
pub(crate) fn zeroed(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    chunk.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written; MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The buffer once every chunk has been through [`zeroed`].
///
/// # Safety
/// Every element of `v` must have been initialised.
pub(crate) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same allocation, length and capacity; MaybeUninit<f32> has f32's layout and the
    // caller guarantees every element is initialised.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

/// A buffer of `len` values written by `fill(i, chunk)` for each `chunk`-sized piece `i`
/// (the last may be shorter), the pieces spread over rayon's pool. `fill` must write every
/// element of its piece (with `MaybeUninit::write` or `write_copy_of_slice`): nothing zeroes
/// them first.
pub(crate) fn par_written(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut v = uninit(len);
    if len > 0 {
        v.par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, c)| fill(i, c));
    }
    // SAFETY: par_chunks_mut covers every element and `fill` writes every element of its
    // chunk (the contract above; the callers' loops zip over the whole chunk).
    unsafe { assume_init(v) }
}

/// The sum of `partial(images)` over fixed runs of images, one run per worker, each run's
/// partial sum computed on its own worker. Fixed runs (not rayon's adaptive split) make the
/// summation order, and so the result, independent of scheduling. `batch` must be positive.
pub(crate) fn sum_over_image_runs(
    batch: usize,
    partial: impl Fn(std::ops::Range<usize>) -> Vec<f32> + Sync + Send,
) -> Vec<f32> {
    let per = batch.div_ceil(rayon::current_num_threads().clamp(1, batch));
    let partials: Vec<Vec<f32>> = (0..batch.div_ceil(per))
        .into_par_iter()
        .map(|c| partial(c * per..((c + 1) * per).min(batch)))
        .collect();
    let mut parts = partials.into_iter();
    let mut total = parts.next().expect("a positive batch has one run");
    for part in parts {
        for (a, b) in total.iter_mut().zip(part) {
            *a += b;
        }
    }
    total
}
