//! cnnzoo-train: the training loop and everything around it: optimisers and learning-rate
//! schedules, metrics (`metrics.jsonl`, `curves.png`), atomic checkpoints with exact resume,
//! and evaluation (top-1, top-5, per-class accuracy, confusion matrix).

pub mod analysis;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod faults;
pub mod files;
pub mod memory;
pub mod metrics;
pub mod plot;
pub mod precision;
pub mod schedule;
pub mod trainer;

pub use analysis::arm::Arm;
pub use cnnzoo_kernels::Precision;
pub use config::{OptimizerKind, ScheduleKind, TrainConfig};
pub use error::TrainError;
pub use trainer::{Outcome, train};
