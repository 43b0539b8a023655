//! cnnzoo-interop: weights that move between cnnzoo and PyTorch. Reads timm and torchvision
//! state dicts (`.safetensors`, `.pth` / `.pt` / `.bin`) through per-family key mapping tables,
//! strictly by default with every difference reported at once, and writes cnnzoo models as
//! timm-keyed `.safetensors` files and ONNX graphs.

pub mod error;
pub mod hub;
pub mod load;
pub mod mapping;
pub mod npy;
pub mod onnx;
pub mod predict;
pub mod pretrained;
pub mod resize;
pub mod save;
pub mod state_dict;

pub use error::{InteropError, Mismatch, ShapeMismatch};
pub use load::{LoadOptions, LoadReport, load_file, load_state_dict};
pub use onnx::{OnnxOptions, save_onnx, to_onnx};
pub use save::save_timm_safetensors;
