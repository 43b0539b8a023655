//! Readers and loader on small fixtures written here (no shared data needed).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use cnnzoo_data::cifar::{self, Cifar};
use cnnzoo_data::folder::ImageFolder;
use cnnzoo_data::idx::{self, FASHION_MNIST_CLASSES, encode_idx};
use cnnzoo_data::{Augment, DataError, Dataset, Loader, LoaderConfig, Normalize};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes an MNIST-format split of `n` 4x4 images whose pixels encode their index.
fn write_idx(dir: &Path, train: bool, n: usize, compress: bool) {
    let pixels: Vec<u8> = (0..n * 16).map(|i| (i / 16) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (images, data) in [
        (true, encode_idx(&[n, 4, 4], &pixels)),
        (false, encode_idx(&[n], &labels)),
    ] {
        let name = idx::official_name(train, images);
        if compress {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&data)).unwrap();
        } else {
            std::fs::write(dir.join(name), data).unwrap();
        }
    }
}

#[test]
fn idx_split_loads_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), true, 12, true);
    write_idx(dir.path(), false, 5, false);
    let train = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES).unwrap();
    assert_eq!((train.len(), train.shape), (12, [1, 4, 4]));
    assert_eq!(train.get(3).unwrap().pixels, vec![3u8; 16]);
    assert_eq!(train.label(11), 1);
    let test = idx::load_split(dir.path(), false, &FASHION_MNIST_CLASSES).unwrap();
    assert_eq!(test.len(), 5);
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }));
    assert!(
        e.to_string().contains("train-images-idx3-ubyte.gz")
            && e.to_string().contains("t10k-labels-idx1-ubyte"),
        "{e}"
    );

    write_idx(dir.path(), true, 4, false);
    // Count mismatch: 3 labels for 4 images.
    let labels = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(&labels, encode_idx(&[3], &[0, 1, 2])).unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("3 labels for 4 images") && e.contains("train-labels-idx1-ubyte"),
        "{e}"
    );
    // Label out of range.
    std::fs::write(&labels, encode_idx(&[4], &[0, 1, 10, 2])).unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 10 of item 2 is out of range"), "{e}");
    // Truncated images file.
    let images = dir.path().join("train-images-idx3-ubyte");
    let full = std::fs::read(&images).unwrap();
    std::fs::write(&images, &full[..full.len() - 5]).unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated") && e.contains("train-images-idx3-ubyte"),
        "{e}"
    );
    // Wrong magic (a labels file where images are expected).
    std::fs::write(&images, encode_idx(&[4], &[0; 4])).unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong magic"), "{e}");
    // Corrupt gzip.
    std::fs::remove_file(&images).unwrap();
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte.gz"),
        [0x1f, 0x8b, 0, 1, 2],
    )
    .unwrap();
    let e = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt gzip"), "{e}");
}

fn cifar_record(label: u8, fine: Option<u8>, value: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(fine);
    r.extend(std::iter::repeat_n(value, 3072));
    r
}

#[test]
fn cifar10_and_100_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&root).unwrap();
    for i in 1..=5u8 {
        let bytes: Vec<u8> = [cifar_record(i, None, i), cifar_record(9, None, 0)].concat();
        std::fs::write(root.join(format!("data_batch_{i}.bin")), bytes).unwrap();
    }
    std::fs::write(root.join("test_batch.bin"), cifar_record(3, None, 7)).unwrap();
    let train = cifar::load_split(dir.path(), Cifar::Ten, true).unwrap();
    assert_eq!((train.len(), train.shape), (10, [3, 32, 32]));
    assert_eq!(train.label(2), 2);
    assert_eq!(train.classes()[9], "truck");
    let test = cifar::load_split(&root, Cifar::Ten, false).unwrap();
    assert_eq!(test.get(0).unwrap().pixels[100], 7);

    // Truncated file and bad label.
    std::fs::write(
        root.join("test_batch.bin"),
        &cifar_record(3, None, 7)[..3000],
    )
    .unwrap();
    let e = cifar::load_split(&root, Cifar::Ten, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("not a whole number"),
        "{e}"
    );
    std::fs::write(root.join("test_batch.bin"), cifar_record(12, None, 7)).unwrap();
    let e = cifar::load_split(&root, Cifar::Ten, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12"), "{e}");

    // CIFAR-100: the fine label is the second byte.
    let root = dir.path().join("cifar-100-binary");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("test.bin"), cifar_record(1, Some(42), 0)).unwrap();
    let test = cifar::load_split(dir.path(), Cifar::Hundred, false).unwrap();
    assert_eq!(test.label(0), 42);
    let e = cifar::load_split(dir.path(), Cifar::Hundred, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.bin") && e.contains("file not found"),
        "{e}"
    );
}

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 255 - value]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_scans_classes_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    for (class, v) in [("cat", 10u8), ("dog", 200)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..3 {
            write_png(&dir.path().join(class).join(format!("{i}.png")), 6, 4, v);
        }
    }
    let f = ImageFolder::open(dir.path(), 3).unwrap();
    assert_eq!(f.classes, vec!["cat", "dog"]);
    assert_eq!(f.len(), 6);
    let s = f.get(4).unwrap();
    assert_eq!((s.label, s.shape), (1, [3, 4, 6]));
    // Channel-major: first plane is R (200), second G (100), third B (55).
    assert_eq!((s.pixels[0], s.pixels[24], s.pixels[48]), (200, 100, 55));

    std::fs::write(dir.path().join("dog").join("3.png"), b"not a png").unwrap();
    let f = ImageFolder::open(dir.path(), 3).unwrap();
    let e = f.get(6).unwrap_err().to_string();
    assert!(e.contains("3.png") && e.contains("cannot decode"), "{e}");

    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let e = ImageFolder::open(dir.path(), 3).unwrap_err().to_string();
    assert!(
        e.contains("empty") && e.contains("empty class folder"),
        "{e}"
    );
}

#[test]
fn image_folder_reads_bmp_and_skips_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    std::fs::create_dir(&cat).unwrap();
    image::RgbImage::from_pixel(5, 3, image::Rgb([9, 8, 7]))
        .save(cat.join("a.bmp"))
        .unwrap();
    // A FIFO named like an image: opening it would block forever.
    let fifo = cat.join("b.png");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let f = ImageFolder::open(dir.path(), 3).unwrap();
    if made.is_ok_and(|s| s.success()) {
        assert!(fifo.exists());
    }
    assert_eq!(f.len(), 1, "{:?}", f.items);
    let s = f.get(0).unwrap();
    assert_eq!((s.shape, s.pixels[0]), ([3, 3, 5], 9));
}

#[test]
fn cifar_class_names_must_be_text() {
    assert_eq!(
        cifar::parse_class_names(b"cat\n\n dog \n").unwrap(),
        vec!["cat", "dog"]
    );
    let e = cifar::parse_class_names(b"cat\n\xff\xfe").unwrap_err();
    assert!(e.contains("not UTF-8"), "{e}");
}

fn loader(n: usize, batch: usize, shuffle: bool, seed: u64) -> Loader {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), true, n, false);
    let data = idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES).unwrap();
    let mut augment = Augment::eval(Normalize {
        mean: vec![0.0],
        std: vec![1.0 / 255.0],
    });
    augment.pad_crop = Some(1);
    augment.hflip = true;
    let config = LoaderConfig {
        batch_size: batch,
        shuffle,
        drop_last: false,
        seed,
        prefetch: 2,
    };
    Loader::new(Arc::new(data), augment, config).unwrap()
}

#[test]
fn loader_covers_every_sample_once_and_is_reproducible() {
    let l = loader(23, 5, true, 42);
    assert_eq!(l.num_batches(), 5);
    let batches: Vec<_> = l.epoch(0, 0).iter().map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 5);
    assert_eq!(batches[4].shape, [3, 1, 4, 4]);
    let mut labels: Vec<u32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    labels.sort_unstable();
    let mut expected: Vec<u32> = (0..23).map(|i| (i % 10) as u32).collect();
    expected.sort_unstable();
    assert_eq!(labels, expected);
    // Same seed: identical batches; resuming at batch 2 gives the same tail.
    let again: Vec<_> = loader(23, 5, true, 42)
        .epoch(0, 0)
        .iter()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches, again);
    let tail: Vec<_> = l.epoch(0, 2).iter().map(|b| b.unwrap()).collect();
    assert_eq!(tail, batches[2..].to_vec());
    // Another epoch or seed: another order.
    assert_ne!(l.order(1), l.order(0));
    assert_ne!(loader(23, 5, true, 7).order(0), l.order(0));
}

#[test]
fn loader_rejects_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), true, 3, false);
    let data = Arc::new(idx::load_split(dir.path(), true, &FASHION_MNIST_CLASSES).unwrap());
    let augment = Augment::eval(Normalize {
        mean: vec![0.0],
        std: vec![1.0],
    });
    let config = LoaderConfig {
        batch_size: 0,
        shuffle: false,
        drop_last: false,
        seed: 0,
        prefetch: 1,
    };
    assert!(Loader::new(data.clone(), augment.clone(), config.clone()).is_err());
    let config = LoaderConfig {
        batch_size: 4,
        drop_last: true,
        ..config
    };
    assert!(
        Loader::new(data, augment, config)
            .unwrap_err()
            .to_string()
            .contains("do not fill")
    );
}

#[test]
fn a_small_file_claiming_a_huge_image_is_refused_before_decoding() {
    // Found by fuzzing: 680 bytes of JPEG whose header says 1548 x 56063 pixels.
    let bomb = include_bytes!("fixtures/jpeg-bomb-1548x56063.jpg");
    let started = std::time::Instant::now();
    let e = cnnzoo_data::folder::decode_bytes(bomb, 3).unwrap_err();
    assert!(e.contains("1548x56063") && e.contains("limit"), "{e}");
    assert!(started.elapsed().as_secs() < 2);
}
