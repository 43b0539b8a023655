//! The analysis tools beside the training loop, each with its own plot: gradient flow per unit
//! ([`gradflow`]), the papers' design experiments ([`experiment`]), SE excitations per class
//! ([`se_stats`]), and the model-plus-design-overrides that each compares ([`arm`]).

pub mod arm;
pub mod experiment;
pub mod gradflow;
pub mod se_stats;
