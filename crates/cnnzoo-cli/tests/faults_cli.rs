//! Fault injection on the real binary: the process killed (an abort, as `kill -9` leaves it)
//! at each step of an epoch's end and of a checkpoint save, SIGTERM mid-epoch, a full disk,
//! and a damaged checkpoint. After each, `--resume` must give the metrics an uninterrupted
//! run gives, every epoch once, with `best/` at the best epoch and nothing left half-written.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// 8x8 images whose class (of 8) is a bright row: a run of three epochs takes a fraction of a
/// second.
fn write_data(dir: &Path) {
    for (split, n, shift) in [("train", 48usize, 0usize), ("t10k", 16, 1)] {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let class = (i * 7 + shift) % 8;
            labels.push(class as u8);
            for y in 0..8 {
                for x in 0..8 {
                    let noise = ((i * 31 + y * 7 + x * 13) % 40) as u8;
                    pixels.push(if y == class { 200 + noise / 2 } else { noise });
                }
            }
        }
        let images = cnnzoo_data::idx::encode_idx(&[n, 8, 8], &pixels);
        let labels = cnnzoo_data::idx::encode_idx(&[n], &labels);
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
}

/// `cnnzoo train` of the test run into `out`, with a fault armed when `fault` is given.
fn train(data: &Path, out: &Path, fault: Option<&str>, resume: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnzoo"));
    cmd.args(["train", "--model", "resnet20", "--dataset", "fashion-mnist"])
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--epochs", "3", "--batch-size", "16", "--lr", "0.05"])
        .args(["--seed", "3", "--threads", "1"]);
    if resume {
        cmd.arg("--resume");
    }
    match fault {
        Some(f) => cmd.env("CNNZOO_FAULT", f),
        None => cmd.env_remove("CNNZOO_FAULT"),
    };
    cmd.output().expect("the cnnzoo binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `metrics.jsonl` without the timing fields, which differ between runs.
fn metrics(run: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            [
                "epoch",
                "lr",
                "train_loss",
                "train_acc",
                "test_loss",
                "test_top1",
                "test_top5",
            ]
            .iter()
            .map(|k| v[k].as_f64().unwrap())
            .collect()
        })
        .collect()
}

fn checkpoint_epoch(dir: &Path) -> (u64, u64) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    (v["epoch"].as_u64().unwrap(), v["batch"].as_u64().unwrap())
}

fn assert_same(reference: &Path, run: &Path, what: &str) {
    let (a, b) = (metrics(reference), metrics(run));
    assert_eq!(a.len(), b.len(), "{what}: epochs {b:?} vs {a:?}");
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() <= 1e-5 * u.abs().max(1.0),
                "{what}: resumed {y:?} vs uninterrupted {x:?}"
            );
        }
    }
    assert_eq!(
        checkpoint_epoch(&run.join("best")),
        checkpoint_epoch(&reference.join("best")),
        "{what}: best/ at another epoch"
    );
    assert_eq!(checkpoint_epoch(&run.join("last")), (3, 0), "{what}");
    for entry in std::fs::read_dir(run).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp") && !name.ends_with(".old"),
            "{what}: {name} left behind"
        );
    }
}

/// Resumes `run` until it completes (a killed resume is not part of these scenarios).
fn resume(data: &Path, run: &Path, what: &str) {
    let o = train(data, run, None, true);
    assert!(o.status.success(), "{what}: resume failed: {}", stderr(&o));
}

#[test]
fn a_kill_at_any_step_of_an_epoch_end_resumes_to_the_uninterrupted_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    let reference = dir.path().join("reference");
    let o = train(&data, &reference, None, false);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&reference).len(), 3);

    // Each checkpoint save passes save:model, save:optimizer, save:state and save:swap; an
    // epoch's end then passes epoch-end:last, epoch-end:best and epoch-end:metrics. The n-th
    // pass covers saves of last/ and of best/ at several epochs.
    let mut scenarios = Vec::new();
    for point in ["save:model", "save:optimizer", "save:state"] {
        for n in [1, 2, 3] {
            scenarios.push(format!("kill:{point}@{n}"));
        }
    }
    for n in 1..=5 {
        scenarios.push(format!("kill:save:swap@{n}"));
    }
    for point in ["epoch-end:last", "epoch-end:best", "epoch-end:metrics"] {
        for n in [1, 2, 3] {
            scenarios.push(format!("kill:{point}@{n}"));
        }
    }
    scenarios.push("kill:batch@4".into());
    for (i, fault) in scenarios.iter().enumerate() {
        let run = dir.path().join(format!("run{i}"));
        let o = train(&data, &run, Some(fault), false);
        assert!(
            !o.status.success(),
            "{fault}: the fault did not fire: {}",
            stderr(&o)
        );
        if run.join("last").exists() || run.join("last.old").exists() {
            resume(&data, &run, fault);
        } else {
            // Killed before the first checkpoint existed: nothing to resume, start over.
            std::fs::remove_dir_all(&run).unwrap();
            let o = train(&data, &run, None, false);
            assert!(o.status.success(), "{fault}: {}", stderr(&o));
        }
        assert_same(&reference, &run, fault);
    }
}

#[test]
fn sigterm_a_full_disk_and_a_damaged_checkpoint_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    let reference = dir.path().join("reference");
    assert!(train(&data, &reference, None, false).status.success());

    // SIGTERM mid-epoch 2: like Ctrl-C, the batch finishes and last/ is written.
    let run = dir.path().join("term");
    let o = train(&data, &run, Some("term:batch@4"), false);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupt"), "{}", stderr(&o));
    // The handler runs on its own thread: the flag is seen after this batch or the next.
    let (epoch, batch) = checkpoint_epoch(&run.join("last"));
    assert!(epoch == 1 && (1..3).contains(&batch), "{epoch} {batch}");
    resume(&data, &run, "SIGTERM");
    assert_same(&reference, &run, "SIGTERM");

    // A full disk while the checkpoint of epoch 2 is written: a clear error naming the file,
    // the previous checkpoint intact, and a resume completes the run.
    let run = dir.path().join("enospc");
    let o = train(&data, &run, Some("enospc:save:model@2"), false);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("No space left on device") && e.contains("model.bpk"),
        "{e}"
    );
    assert_eq!(checkpoint_epoch(&run.join("last")), (1, 0));
    resume(&data, &run, "ENOSPC");
    assert_same(&reference, &run, "ENOSPC");

    // last/ damaged after an interruption mid-epoch 2: the resume says so, falls back to
    // best/ (epoch 1) and retrains epoch 2 to the same numbers.
    let run = dir.path().join("damaged");
    assert!(
        train(&data, &run, Some("term:batch@4"), false)
            .status
            .success()
    );
    let model = run.join("last/model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 16].fill(0xff);
    std::fs::write(&model, bytes).unwrap();
    let o = train(&data, &run, None, true);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("damaged") && e.contains("resuming from") && e.contains("best"),
        "{e}"
    );
    assert_same(&reference, &run, "damaged last/");
}

#[test]
fn damaged_or_unchecked_checkpoints_are_named_when_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    let run = dir.path().join("run");
    assert!(train(&data, &run, None, false).status.success());
    let eval = |weights: &Path| {
        Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
            .args(["eval", "--model", "resnet20", "--dataset", "fashion-mnist"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--weights")
            .arg(weights)
            .arg("--out")
            .arg(dir.path().join("eval"))
            .output()
            .unwrap()
    };
    let o = eval(&run.join("best"));
    assert!(o.status.success(), "{}", stderr(&o));

    // Overwritten bytes: refused by the checksum, naming the file.
    let best = run.join("best");
    let model = best.join("model.bpk");
    let good = std::fs::read(&model).unwrap();
    let mut bad = good.clone();
    // All-ones words are NaN as f32, wherever the tensors' alignment falls.
    let at = bad.len() - 64;
    bad[at..at + 16].fill(0xff);
    std::fs::write(&model, &bad).unwrap();
    let o = eval(&best);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("model.bpk") && stderr(&o).contains("SHA-256"),
        "{}",
        stderr(&o)
    );

    // A checkpoint from before checksums: loads with a warning, and NaN weights in it are
    // still refused by the weight check.
    let state = best.join("state.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("checksums");
    std::fs::write(&state, serde_json::to_string(&v).unwrap()).unwrap();
    std::fs::write(&model, &good).unwrap();
    let o = eval(&best);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("before checkpoints carried checksums"));
    std::fs::write(&model, &bad).unwrap();
    let o = eval(&best);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NaN"), "{}", stderr(&o));
}
