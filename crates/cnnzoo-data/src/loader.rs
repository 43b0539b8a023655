//! Batches assembled in parallel (rayon) and prefetched on a background thread while the
//! model computes. Order and augmentation depend only on (seed, epoch, index), so a run
//! resumed mid-way sees the same batches as an uninterrupted one.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::transform::{Augment, sample_rng};

/// Batch size, order and prefetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle every epoch (training) or keep the data set's order (evaluation).
    pub shuffle: bool,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    /// Seed of the order and of the augmentation.
    pub seed: u64,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

/// A batch: normalised `f32` images in NCHW order and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Pixels, `[N, C, H, W]` flattened.
    pub images: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Labels.
    pub labels: Vec<u32>,
}

/// Produces the batches of a data set, epoch by epoch.
#[derive(Clone)]
pub struct Loader {
    dataset: Arc<dyn Dataset>,
    augment: Arc<Augment>,
    config: LoaderConfig,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.dataset.len())
            .field("augment", &self.augment)
            .field("config", &self.config)
            .finish()
    }
}

impl Loader {
    /// A loader over `dataset`; fails on an empty data set or a zero batch size.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        augment: Augment,
        config: LoaderConfig,
    ) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        if dataset.is_empty() {
            return Err(DataError::Invalid("the data set is empty".into()));
        }
        if config.drop_last && dataset.len() < config.batch_size {
            return Err(DataError::Invalid(format!(
                "{} samples do not fill one batch of {}",
                dataset.len(),
                config.batch_size
            )));
        }
        Ok(Loader {
            dataset,
            augment: Arc::new(augment),
            config,
        })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        if self.config.drop_last {
            n / self.config.batch_size
        } else {
            n.div_ceil(self.config.batch_size)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            let mut rng =
                StdRng::seed_from_u64(self.config.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rng);
        }
        order
    }

    /// Assembles the batch of `indices` for `epoch` (in parallel over samples).
    pub fn assemble(&self, epoch: u64, indices: &[usize]) -> Result<Batch, DataError> {
        let first = self.dataset.get(indices[0])?;
        let [c, h, w] = self.augment.output_shape(first.shape);
        let per = c * h * w;
        let mut images = vec![0f32; indices.len() * per];
        images
            .par_chunks_mut(per)
            .zip(indices.par_iter())
            .try_for_each(|(out, &i)| {
                let sample = if i == indices[0] {
                    first.clone()
                } else {
                    self.dataset.get(i)?
                };
                if self.augment.output_shape(sample.shape) != [c, h, w] {
                    return Err(DataError::Invalid(format!(
                        "sample {i} is {:?} but the batch is {:?}; resize or crop to one size",
                        sample.shape,
                        [c, h, w]
                    )));
                }
                let mut rng = sample_rng(self.config.seed, epoch, i as u64);
                self.augment.apply(&sample, &mut rng, out);
                Ok(())
            })?;
        Ok(Batch {
            images,
            shape: [indices.len(), c, h, w],
            labels: indices.iter().map(|&i| self.dataset.label(i)).collect(),
        })
    }

    /// The batches of `epoch` from batch `start` on, prepared on a background thread.
    pub fn epoch(&self, epoch: u64, start: usize) -> Receiver<Result<Batch, DataError>> {
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let loader = self.clone();
        std::thread::spawn(move || {
            let order = loader.order(epoch);
            let batches = loader.num_batches();
            for b in start..batches {
                let lo = b * loader.config.batch_size;
                let hi = (lo + loader.config.batch_size).min(order.len());
                let batch = loader.assemble(epoch, &order[lo..hi]);
                let failed = batch.is_err();
                // The consumer went away (run interrupted): stop quietly.
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        rx
    }
}
