//! CIFAR-10 / CIFAR-100 binary records and the class-names file.
#![no_main]

use std::path::Path;

use cnnzoo_data::InMemory;
use cnnzoo_data::cifar::{Cifar, parse_class_names, parse_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let which = if which & 1 == 0 { Cifar::Ten } else { Cifar::Hundred };
    let mut out = InMemory {
        pixels: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: Vec::new(),
    };
    if parse_records(Path::new("batch.bin"), rest, which, &mut out).is_ok() {
        assert_eq!(out.pixels.len(), out.labels.len() * 3 * 32 * 32);
        let _ = cnnzoo_data::stats::mean_std(&out);
    }
    let _ = parse_class_names(rest);
});
