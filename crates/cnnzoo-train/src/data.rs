//! Data set names to loaders: which files, which statistics, which augmentation.

use std::path::Path;
use std::sync::Arc;

use cnnzoo_data::cifar::{self, Cifar};
use cnnzoo_data::folder::ImageFolder;
use cnnzoo_data::idx::{self, FASHION_MNIST_CLASSES, MNIST_CLASSES};
use cnnzoo_data::stats::mean_std;
use cnnzoo_data::{Augment, DataError, Dataset, InMemory, Loader, LoaderConfig, Normalize, Sample};

use crate::config::TrainConfig;
use crate::error::TrainError;

/// Train and test loaders with what the model needs to know about the data.
#[derive(Debug)]
pub struct DataPair {
    /// Shuffled, augmented training batches.
    pub train: Loader,
    /// Evaluation batches, in order, normalised only.
    pub test: Loader,
    /// Class names.
    pub classes: Vec<String>,
    /// Input shape `[C, H, W]` of a batch.
    pub input: [usize; 3],
}

/// An evenly spaced subset of another data set.
struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        self.inner.get(self.indices[index])
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
    fn label(&self, index: usize) -> u32 {
        self.inner.label(self.indices[index])
    }
}

fn subset(data: Arc<dyn Dataset>, n: Option<usize>) -> Arc<dyn Dataset> {
    match n {
        Some(n) if n < data.len() => {
            let len = data.len();
            let indices = (0..n).map(|i| i * len / n).collect();
            Arc::new(Subset {
                inner: data,
                indices,
            })
        }
        _ => data,
    }
}

const IMAGENET_NORM: ([f32; 3], [f32; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

fn in_memory(dir: &Path, name: &str) -> Result<Option<(InMemory, InMemory)>, DataError> {
    Ok(Some(match name {
        "fashion-mnist" | "fashion_mnist" | "fmnist" => (
            idx::load_split(dir, true, &FASHION_MNIST_CLASSES)?,
            idx::load_split(dir, false, &FASHION_MNIST_CLASSES)?,
        ),
        "mnist" => (
            idx::load_split(dir, true, &MNIST_CLASSES)?,
            idx::load_split(dir, false, &MNIST_CLASSES)?,
        ),
        "cifar10" | "cifar-10" => (
            cifar::load_split(dir, Cifar::Ten, true)?,
            cifar::load_split(dir, Cifar::Ten, false)?,
        ),
        "cifar100" | "cifar-100" => (
            cifar::load_split(dir, Cifar::Hundred, true)?,
            cifar::load_split(dir, Cifar::Hundred, false)?,
        ),
        _ => return Ok(None),
    }))
}

/// Opens the data set named in `config` and builds its loaders.
pub fn open(config: &TrainConfig) -> Result<DataPair, TrainError> {
    let name = config.dataset.to_ascii_lowercase();
    let loader_config = |shuffle| LoaderConfig {
        batch_size: config.batch_size,
        shuffle,
        drop_last: false,
        seed: config.seed,
        prefetch: 3,
    };
    if let Some((train, test)) = in_memory(&config.data_dir, &name)? {
        if train.shape != test.shape {
            return Err(TrainError::Invalid(format!(
                "{}: train images are {:?} (CxHxW), test images {:?}; both splits must have one size",
                config.data_dir.display(),
                train.shape,
                test.shape
            )));
        }
        let norm = mean_std(&train);
        let default_pad = match train.shape[1] {
            32 => 4,
            28 => 2,
            _ => 0,
        };
        let mut augment = Augment::eval(norm.clone());
        augment.pad_crop = Some(config.pad_crop.unwrap_or(default_pad));
        augment.hflip = config.hflip;
        let input = train.shape;
        let classes = train.classes.clone();
        let train = subset(Arc::new(train), config.train_subset);
        let test = subset(Arc::new(test), config.test_subset);
        return Ok(DataPair {
            train: Loader::new(train, augment, loader_config(true))?,
            test: Loader::new(test, Augment::eval(norm), loader_config(false))?,
            classes,
            input,
        });
    }
    if let Some(root) = config.dataset.strip_prefix("folder:") {
        let root = Path::new(root);
        let channels = 3;
        let train = ImageFolder::open(&root.join("train"), channels)?;
        let test = ImageFolder::open(&root.join("val"), channels)?;
        if train.classes != test.classes {
            return Err(TrainError::Invalid(format!(
                "{}: train and val class folders differ",
                root.display()
            )));
        }
        let norm = Normalize {
            mean: IMAGENET_NORM.0.to_vec(),
            std: IMAGENET_NORM.1.to_vec(),
        };
        let size = config.image_size;
        let mut train_aug = Augment::eval(norm.clone());
        train_aug.random_resized_crop = Some(size);
        train_aug.hflip = config.hflip;
        let mut test_aug = Augment::eval(norm);
        test_aug.resize_center_crop = Some(((size as f64 / 0.875).round() as usize, size));
        let classes = train.classes.clone();
        return Ok(DataPair {
            train: Loader::new(
                subset(Arc::new(train), config.train_subset),
                train_aug,
                loader_config(true),
            )?,
            test: Loader::new(
                subset(Arc::new(test), config.test_subset),
                test_aug,
                loader_config(false),
            )?,
            classes,
            input: [channels, size, size],
        });
    }
    Err(TrainError::Invalid(format!(
        "unknown data set '{}' (expected fashion-mnist, mnist, cifar10, cifar100 or folder:PATH)",
        config.dataset
    )))
}
