//! IDX images + labels files (MNIST, Fashion-MNIST), then the statistics of what parsed.
#![no_main]

use std::path::Path;

use cnnzoo_data::idx::{MNIST_CLASSES, parse_idx, parse_pair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes say where the images file ends and the labels file begins.
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_le_bytes([data[0], data[1]]))).min(data.len() - 2);
    let (images, labels) = data[2..].split_at(split);
    let _ = parse_idx(images, 1);
    let paths = (Path::new("images"), Path::new("labels"));
    if let Ok(set) = parse_pair(images, labels, paths, &MNIST_CLASSES) {
        let _ = cnnzoo_data::stats::mean_std(&set);
    }
});
