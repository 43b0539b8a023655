//! NumPy `.npy` batches (`cnnzoo logits --input`).
#![no_main]

use cnnzoo_interop::npy::parse_npy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((shape, values)) = parse_npy(data) {
        assert_eq!(shape.iter().product::<usize>(), values.len());
    }
});
