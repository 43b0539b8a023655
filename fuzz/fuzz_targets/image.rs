//! Image decoding: the ImageFolder decoder (PNG, JPEG, BMP; 1 and 3 channels) and `predict`'s
//! timm preprocessing (libjpeg-turbo for JPEGs, resize, center crop).
#![no_main]

use cnnzoo_data::folder::decode_bytes;
use cnnzoo_interop::predict::Preprocess;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for channels in [1, 3] {
        if let Ok((pixels, [c, h, w])) = decode_bytes(data, channels) {
            assert_eq!(pixels.len(), c * h * w);
        }
    }
    let mut pre = Preprocess::for_model("resnet18");
    // A small crop keeps each run fast; the paths are the same as at 224.
    pre.size = 16;
    if let Ok(x) = pre.apply(data) {
        assert_eq!(x.len(), 3 * 16 * 16);
        assert!(x.iter().all(|v| v.is_finite()));
    }
});
