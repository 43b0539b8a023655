//! cnnzoo-data: the data path from files on disk to normalised, augmented batches.
//!
//! Readers for IDX (MNIST, Fashion-MNIST), CIFAR-10/100 binary and ImageFolder trees; seeded
//! per-sample augmentation; batches assembled in parallel and prefetched on a background
//! thread. No tensor framework here: batches are plain `f32` buffers in NCHW order.

pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod stats;
pub mod transform;

pub use dataset::{Dataset, InMemory, Sample};
pub use error::DataError;
pub use loader::{Batch, Loader, LoaderConfig};
pub use transform::{Augment, Normalize};
