//! Tiny end-to-end training runs on synthetic IDX data written here: outputs, exact resume
//! after an interruption, NaN detection, refusal to overwrite a run, and gradient flow.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use cnnzoo_data::idx::{encode_idx, official_name};
use cnnzoo_train::metrics::{EpochMetrics, read_jsonl};
use cnnzoo_train::{TrainConfig, TrainError, train};

/// Runs one training at a time: concurrent trainings in one process are not bit-identical
/// (observed; the CPU backend's kernels share one thread pool), and the resume test compares
/// to 1e-5.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 8x8 images whose class is written as a bright row (class = row index, 8 classes of 10),
/// plus a little deterministic texture: easy to learn, not trivial.
fn write_data(dir: &Path, n_train: usize, n_test: usize) {
    for (train, n) in [(true, n_train), (false, n_test)] {
        let mut pixels = Vec::with_capacity(n * 64);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i * 7 + usize::from(!train)) % 8;
            labels.push(class as u8);
            for y in 0..8 {
                for x in 0..8 {
                    let noise = ((i * 31 + y * 7 + x * 13) % 40) as u8;
                    pixels.push(if y == class { 200 + noise / 2 } else { noise });
                }
            }
        }
        std::fs::write(
            dir.join(official_name(train, true)),
            encode_idx(&[n, 8, 8], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(official_name(train, false)),
            encode_idx(&[n], &labels),
        )
        .unwrap();
    }
}

fn config(data: &Path, out: &Path, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::new(
        "resnet20",
        "fashion-mnist",
        data.to_path_buf(),
        out.to_path_buf(),
    );
    c.epochs = epochs;
    c.batch_size = 16;
    c.lr = 0.05;
    // A shift would move the class row: no crop (the resume test turns it on).
    c.pad_crop = Some(0);
    c.seed = 3;
    c
}

/// Metrics without the timing fields, which differ between runs.
fn comparable(h: &[EpochMetrics]) -> Vec<[f64; 7]> {
    h.iter()
        .map(|m| {
            [
                m.epoch as f64,
                m.lr,
                m.train_loss,
                m.train_acc,
                m.test_loss,
                m.test_top1,
                m.test_top5,
            ]
        })
        .collect()
}

#[test]
fn a_short_run_learns_and_writes_its_outputs() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 128, 32);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let outcome = train(
        &config(data.path(), &run, 5),
        &Device::default(),
        &AtomicBool::new(false),
        false,
    )
    .unwrap();
    assert!(!outcome.interrupted);
    let h = &outcome.history;
    assert_eq!(h.len(), 5);
    assert!(
        h[4].train_loss < 0.8 * h[0].train_loss,
        "loss did not fall: {h:#?}"
    );
    // Eight classes: chance is 12.5%.
    assert!(
        h[4].train_acc > 0.25 && h[4].test_top1 > 0.25,
        "accuracy not well above chance: {h:#?}"
    );
    assert_eq!(read_jsonl(&run.join("metrics.jsonl")).unwrap(), *h);
    for f in [
        "curves.png",
        "last/model.bpk",
        "last/optimizer.bpk",
        "last/state.json",
        "best/model.bpk",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // A second run into the same folder without --resume is refused.
    let e = train(
        &config(data.path(), &run, 3),
        &Device::default(),
        &AtomicBool::new(false),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
}

#[test]
fn an_interrupted_run_resumes_to_the_same_metrics() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 48, 16);
    let out = tempfile::tempdir().unwrap();
    let device = Device::default();
    // Random crops on, so the augmentation's seeding is part of what must resume exactly.
    let cfg = |run: &Path| {
        let mut c = config(data.path(), run, 2);
        c.pad_crop = Some(1);
        c
    };

    let straight = out.path().join("straight");
    let full = train(&cfg(&straight), &device, &AtomicBool::new(false), false).unwrap();

    // Stop after the first batch (mid-epoch 1), then resume to the end.
    let resumed = out.path().join("resumed");
    let cut = train(&cfg(&resumed), &device, &AtomicBool::new(true), false).unwrap();
    assert!(cut.interrupted && cut.history.is_empty());
    assert!(resumed.join("last/state.json").is_file());
    let done = train(&cfg(&resumed), &device, &AtomicBool::new(false), true).unwrap();
    assert!(!done.interrupted);
    let (a, b) = (comparable(&full.history), comparable(&done.history));
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() <= 1e-5 * u.abs().max(1.0),
                "uninterrupted {x:?} vs resumed {y:?}"
            );
        }
    }
    assert_eq!(a.len(), b.len());
}

#[test]
fn train_and_test_images_of_different_sizes_are_refused() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 16, 8);
    // Test images of 4x16 instead of 8x8: the same bytes, another header.
    let path = data.path().join(official_name(false, true));
    let pixels = std::fs::read(&path).unwrap()[16..].to_vec();
    std::fs::write(&path, encode_idx(&[8, 4, 16], &pixels)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = train(
        &config(data.path(), &out.path().join("run"), 1),
        &Device::default(),
        &AtomicBool::new(false),
        false,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("[1, 8, 8]") && e.to_string().contains("[1, 4, 16]"),
        "{e}"
    );
}

#[test]
fn a_diverging_loss_stops_with_a_clear_error() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 32, 16);
    let out = tempfile::tempdir().unwrap();
    let mut c = config(data.path(), &out.path().join("nan"), 2);
    c.lr = 1e30;
    c.weight_decay = 0.0;
    match train(&c, &Device::default(), &AtomicBool::new(false), false) {
        Err(TrainError::NonFinite { .. }) => {}
        other => panic!("expected a non-finite loss error, got {other:?}"),
    }
}

#[test]
fn bad_settings_are_refused() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 16, 8);
    let out = tempfile::tempdir().unwrap();
    let mut c = config(data.path(), &out.path().join("x"), 1);
    c.lr = -1.0;
    assert!(train(&c, &Device::default(), &AtomicBool::new(false), false).is_err());
    let mut c = config(data.path(), &out.path().join("y"), 1);
    c.dataset = "imagenet22k".into();
    let e = train(&c, &Device::default(), &AtomicBool::new(false), false).unwrap_err();
    assert!(e.to_string().contains("unknown data set"), "{e}");
    let mut c = config(data.path(), &out.path().join("z"), 1);
    c.model = "resnet21".into();
    let e = train(&c, &Device::default(), &AtomicBool::new(false), false).unwrap_err();
    assert!(e.to_string().contains("unknown model"), "{e}");
    let e = train(
        &config(data.path(), &out.path().join("none"), 1),
        &Device::default(),
        &AtomicBool::new(false),
        true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no checkpoint"), "{e}");
}

#[test]
fn gradient_flow_shows_vanishing_in_a_sigmoid_plain_net_and_not_in_a_resnet() {
    use cnnzoo_train::Arm;
    use cnnzoo_train::analysis::gradflow::{GradflowConfig, run, write_csv};
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), 96, 16);
    let config = GradflowConfig {
        train: config(dir.path(), &dir.path().join("out"), 1),
        steps: 2,
    };
    let device = Device::default();
    let measure = |spec: &str| run(&spec.parse::<Arm>().unwrap(), &config, &device).unwrap();

    let resnet = measure("resnet20");
    assert_eq!(resnet.snapshots.len(), 2, "{:?}", resnet.note);
    assert_eq!(resnet.snapshots[1].step, 2);
    let layers = &resnet.snapshots[0].layers;
    // Stem plus two conv units in each of nine basic blocks; option A has no projections.
    assert_eq!(layers.len(), 19);
    assert_eq!(layers[0].name, "stem.conv");
    assert_eq!(layers[18].name, "stages.2.2.conv2");
    for l in layers {
        assert!(
            l.weight_grad_norm > 0.0 && l.weight_grad_norm.is_finite(),
            "{l:?}"
        );
        assert!(l.output_grad_norm > 0.0 && l.act_std > 0.0, "{l:?}");
    }
    let plain = measure("plain20:act=sigmoid,norm=none");
    let (r_plain, r_res) = (plain.snapshots[0].ratio(), resnet.snapshots[0].ratio());
    assert!(
        r_plain > 1e3,
        "sigmoid plain net: last/first gradient ratio {r_plain}"
    );
    assert!(r_res < 10.0, "resnet20: last/first gradient ratio {r_res}");
    assert!(plain.snapshots[0].output_ratio() > 1e3);

    // Option B adds a projection unit where the shape changes, seen in depth order.
    let b = measure("resnet20:shortcut=B");
    let names: Vec<&str> = b.snapshots[0]
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names.len(), 21);
    assert!(names.contains(&"stages.1.0.downsample"), "{names:?}");

    let csv = dir.path().join("r.csv");
    write_csv(&csv, &resnet).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("step,index,name,weight_grad_norm"));
    assert_eq!(text.lines().count(), 1 + 2 * 19);

    let e = run(&"densenet40_k12".parse::<Arm>().unwrap(), &config, &device).unwrap_err();
    assert!(e.to_string().contains("residual family"), "{e}");
}

#[test]
fn an_experiment_trains_each_arm_reports_and_reads_finished_arms_back() {
    use cnnzoo_train::analysis::experiment::{Experiment, report, run};
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), 48, 16);
    let out = dir.path().join("exp");
    let recipe = config(dir.path(), &out, 1);
    let device = Device::default();
    let stop = AtomicBool::new(false);
    let results = run(Experiment::Shortcuts, &recipe, &out, &device, &stop)
        .unwrap()
        .expect("not interrupted");
    let labels: Vec<String> = results.iter().map(|r| r.arm.label()).collect();
    assert_eq!(
        labels,
        [
            "resnet20:shortcut=A",
            "resnet20:shortcut=B",
            "resnet20:shortcut=C"
        ]
    );
    // Projections cost parameters: none for A, two for B, one per block for C.
    assert!(results[0].params < results[1].params && results[1].params < results[2].params);
    for r in &results {
        assert_eq!(r.history.len(), 1);
        assert!(r.folder.join("metrics.jsonl").is_file());
    }
    let text = report(
        Experiment::Shortcuts,
        &results,
        &recipe,
        "cnnzoo experiment shortcuts",
        "x.png",
    );
    assert!(text.contains("| resnet20:shortcut=C |") && text.contains("Lowest final test error"));

    // A second call finds every arm finished and returns the same numbers without training.
    let again = run(Experiment::Shortcuts, &recipe, &out, &device, &stop)
        .unwrap()
        .unwrap();
    for (a, b) in results.iter().zip(&again) {
        assert_eq!(comparable(&a.history), comparable(&b.history));
    }
}

#[test]
fn se_stats_average_each_blocks_gates_per_class() {
    use cnnzoo_models::{ModelOptions, create};
    use cnnzoo_train::analysis::se_stats;
    use cnnzoo_train::data;
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), 16, 24);
    let mut c = config(dir.path(), &dir.path().join("out"), 1);
    c.batch_size = 10;
    let pair = data::open(&c).unwrap();
    let device = Device::default();
    // The fixture is read as Fashion-MNIST: ten class names, of which it uses eight.
    assert_eq!(pair.classes.len(), 10);
    let options = ModelOptions {
        num_classes: Some(10),
        in_channels: Some(1),
    };
    let model = create("seresnet20", options).unwrap().init(&device);
    let stats = se_stats::collect(&model, &pair.test, &pair.classes, &device).unwrap();
    assert_eq!(stats.counts.iter().sum::<u64>(), 24);
    assert_eq!(stats.blocks.len(), 9);
    assert_eq!(stats.blocks[0].name, "stages.0.0");
    assert_eq!(stats.blocks[8].per_class.len(), 10);
    assert_eq!(stats.blocks[8].per_class[0].len(), 64);
    for b in &stats.blocks {
        for (row, n) in b.per_class.iter().zip(&stats.counts) {
            if *n > 0 {
                assert!(
                    row.iter().all(|g| *g > 0.0 && *g < 1.0),
                    "{}: {row:?}",
                    b.name
                );
            }
        }
        assert!(b.class_spread >= 0.0 && b.class_spread.is_finite());
    }
    let plain = create("resnet20", options).unwrap().init(&device);
    let e = se_stats::collect(&plain, &pair.test, &pair.classes, &device).unwrap_err();
    assert!(e.to_string().contains("no SE units"), "{e}");
}
