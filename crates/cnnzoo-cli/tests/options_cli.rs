//! Training and benchmark options through the binary: the CPU refuses half precision with a
//! reason (its kernels are f32), a misspelt precision, optimizer or schedule names the choices,
//! and f32 still runs.

mod common;

use common::cnnzoo;

/// `cnnzoo bench` of one tiny resnet20 step in `precision`, with `extra` flags.
fn bench(precision: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "bench",
        "--model",
        "resnet20",
        "--batch",
        "2",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--precision",
        precision,
    ];
    args.extend_from_slice(extra);
    cnnzoo(&args)
}

#[test]
fn the_cpu_refuses_half_precision_and_f32_runs() {
    for precision in ["bf16", "f16"] {
        let (ok, _, err) = bench(precision, &[]);
        assert!(!ok, "{precision} ran on the CPU");
        assert!(
            err.contains("needs a GPU device") && err.contains(precision),
            "{precision}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (ok, _, err) = bench("int8", &[]);
    assert!(
        !ok && err.contains("'int8'") && err.contains("bf16"),
        "{err}"
    );
    let (ok, out, err) = bench("f32", &["--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["precision"], "f32");
    assert!(report["images_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn training_refuses_half_precision_on_the_cpu_before_touching_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, _, err) = cnnzoo(&[
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--precision",
        "bf16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("needs a GPU device"), "{err}");
    assert!(!out.join("last").exists());
}

#[test]
fn optimizer_and_schedule_names_are_checked_by_the_parser() {
    let base = [
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "fashion-mnist",
        "--out",
        "/nonexistent",
    ];
    for (flag, bad, choices) in [
        ("--optimizer", "adam", "sgd, adamw"),
        ("--schedule", "linear", "constant, multistep, cosine"),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, bad]);
        let (ok, _, err) = cnnzoo(&args);
        assert!(!ok, "{flag} {bad} was accepted");
        assert!(err.contains(bad) && err.contains(choices), "{err}");
    }
}

#[test]
fn out_of_range_and_nan_training_options_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let base = [
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for (bad, message) in [
        (vec!["--momentum", "NaN"], "momentum must be in [0, 1)"),
        (vec!["--momentum=-5"], "momentum must be in [0, 1)"),
        (
            vec!["--weight-decay", "NaN"],
            "weight decay must be in [0, 1]",
        ),
        (vec!["--warmup-epochs", "NaN"], "warm-up epochs must be in"),
        (
            vec!["--schedule", "multistep", "--milestones=-0.5"],
            "milestone (fraction of training) must be in [0, 1]",
        ),
        (
            vec!["--pad-crop", "100000"],
            "crop padding (pixels) must be in [0, 256]",
        ),
        (
            vec!["--threads", "100000"],
            "--threads must be between 1 and",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(bad.iter().copied());
        let (ok, _, err) = cnnzoo(&args);
        assert!(!ok, "{bad:?} was accepted");
        assert!(err.contains(message), "{bad:?}: {err}");
        assert!(!out.exists(), "{bad:?} created the run folder");
    }
}

#[test]
fn batches_and_inputs_that_cannot_fit_are_refused_before_allocating() {
    // A million resnet20 training samples need far more memory than a test machine has.
    let (ok, _, err) = cnnzoo(&[
        "bench", "--model", "resnet20", "--batch", "1000000", "--iters", "1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("needs at least")
            && err.contains("GiB is free")
            && err.contains("smaller batch"),
        "{err}"
    );
    let (ok, _, err) = cnnzoo(&[
        "bench",
        "--model",
        "resnet20",
        "--mode",
        "infer",
        "--input",
        "3x60000x60000",
        "--batch",
        "64",
        "--iters",
        "1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("inference of resnet20") && err.contains("GiB is free"),
        "{err}"
    );
    let (ok, _, err) = cnnzoo(&["bench", "--model", "resnet20", "--input", "3x100000x100000"]);
    assert!(!ok);
    assert!(err.contains("sides of 1 to 65536"), "{err}");
    for (_, _, err) in [
        cnnzoo(&["bench", "--model", "resnet20", "--batch", "1000000"]),
        cnnzoo(&["bench", "--model", "resnet20", "--input", "3x100000x100000"]),
    ] {
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{err}"
        );
    }
}
