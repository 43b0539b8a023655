//! The data set abstraction: indexed samples of `u8` images in CHW order with a class label.

use crate::error::DataError;

/// One image (CHW, `u8`) and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Pixels, channel-major (`[C, H, W]` flattened).
    pub pixels: Vec<u8>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Class index.
    pub label: u32,
}

/// A labelled image data set with random access.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sample `index` (decoded for image files; may fail for a corrupt file).
    fn get(&self, index: usize) -> Result<Sample, DataError>;
    /// Class names, indexed by label.
    fn classes(&self) -> &[String];
    /// The label of sample `index` without decoding it.
    fn label(&self, index: usize) -> u32;
}

/// A data set held in memory as one `u8` buffer of equally shaped images (IDX, CIFAR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InMemory {
    /// All pixels, sample after sample.
    pub pixels: Vec<u8>,
    /// Labels, one per sample.
    pub labels: Vec<u32>,
    /// Shape of every image.
    pub shape: [usize; 3],
    /// Class names.
    pub classes: Vec<String>,
}

impl InMemory {
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The first `n` samples (all when `n` is larger): quick runs on a subset.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        self.pixels.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let n = self.image_len();
        let pixels = self
            .pixels
            .get(index * n..(index + 1) * n)
            .ok_or_else(|| {
                DataError::Invalid(format!("sample {index} out of range {}", self.len()))
            })?
            .to_vec();
        Ok(Sample {
            pixels,
            shape: self.shape,
            label: self.labels[index],
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }
}
