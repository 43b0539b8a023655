//! The analysis tools beside the training loop, each with its own plot: gradient flow per unit
//! ([`gradflow`]), the papers' design experiments ([`experiment`]), SE excitations per class
//! ([`se_stats`]), the test-time lesion study ([`lesion`]), ResNeXt's three equivalent forms
//! ([`resnext_forms`]), and the model-plus-design-overrides that each compares ([`arm`]).

pub mod arm;
pub mod experiment;
pub mod gradflow;
pub mod lesion;
pub mod resnext_forms;
pub mod se_stats;
