//! cnnzoo-models: the classic convolutional network family on Burn.
//!
//! Building blocks live in [`blocks`] (conv-BN-activation units, squeeze-and-excitation,
//! residual blocks, dense layers, inception modules, heads); whole networks in [`models`]
//! (one configurable [`models::resnet::ResNet`] for ResNet / ResNeXt / SE / plain / CIFAR
//! variants, [`models::densenet::DenseNet`], [`models::inception`]); named variants in
//! [`registry`]; per-layer shapes, parameters and multiply-accumulates in [`summary`].
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use cnnzoo_models::{ModelOptions, create};
//!
//! let device = Device::default();
//! // Fashion-MNIST: 1 input channel, 10 classes.
//! let options = ModelOptions { num_classes: Some(10), in_channels: Some(1) };
//! let model = create("resnet20", options)?.init(&device);
//! let logits = model.forward(Tensor::<4>::random([8, 1, 28, 28], Distribution::Default, &device));
//! assert_eq!(logits.dims(), [8, 10]);
//! # Ok::<(), cnnzoo_models::ModelError>(())
//! ```

pub mod blocks;
pub mod check;
pub mod error;
pub mod fuse;
pub mod graph;
pub mod init;
pub mod models;
pub mod overrides;
pub mod registry;
pub mod summary;

pub use check::check_weights;
pub use error::ModelError;
pub use fuse::FuseBn;
pub use models::{Model, ModelConfig};
pub use overrides::{Overrides, create_with};
pub use registry::{ModelOptions, ModelSpec, create, find, list, spec};
pub use summary::{FeatureShape, LayerRow, Summarize, Summary};
