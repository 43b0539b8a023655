//! A hub repository's timm `config.json`.
#![no_main]

use cnnzoo_interop::pretrained::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = parse_config(text)
        && let Some(p) = config.preprocess
    {
        // A config that parses can preprocess an image.
        let mut p = p;
        p.size = p.size.min(8);
        let png = include_bytes!("../seeds/image/gray.png");
        let _ = p.apply(png);
    }
});
