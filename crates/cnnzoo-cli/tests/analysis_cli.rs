//! Design overrides and the analysis commands end to end through the binary: a tiny training
//! run of a changed design, `eval` and `se-stats` rebuilding it from the checkpoint, and
//! `gradflow` comparing arms.

mod common;

use common::cnnzoo;
use std::path::Path;

use cnnzoo_data::idx::{encode_idx, official_name};

/// 8x8 IDX images whose class (0-3) is a bright row.
fn write_data(dir: &Path) {
    for (train, n) in [(true, 40), (false, 12)] {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let class = i % 4;
            labels.push(class as u8);
            for y in 0..8 {
                for x in 0..8 {
                    pixels.push(if y == class {
                        220
                    } else {
                        ((i + x * 3) % 30) as u8
                    });
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

#[test]
fn a_changed_design_trains_evaluates_and_shows_its_excitations() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let data = dir.path().to_str().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let common = ["--dataset", "fashion-mnist", "--data-dir", data];
    let mut train = vec![
        "train",
        "--model",
        "resnet20",
        "--shortcut",
        "B",
        "--se-reduction",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--pad-crop",
        "0",
        "--out",
        run_s,
    ];
    train.extend(common);
    let (ok, _, err) = cnnzoo(&train);
    assert!(ok, "{err}");
    let state = std::fs::read_to_string(run.join("last/state.json")).unwrap();
    assert!(state.contains("\"se_reduction\": 4"), "{state}");

    // The checkpoint's recorded design is rebuilt: option-B projections and SE units load.
    let best = run.join("best");
    let best_s = best.to_str().unwrap();
    let mut eval = vec!["eval", "--model", "resnet20", "--weights", best_s];
    eval.extend(common);
    let (ok, out, err) = cnnzoo(&eval);
    assert!(ok, "{err}");
    assert!(out.contains("top-1"), "{out}");

    let stats_dir = dir.path().join("se");
    let mut se = vec![
        "se-stats",
        "--model",
        "resnet20",
        "--weights",
        best_s,
        "--out",
        stats_dir.to_str().unwrap(),
    ];
    se.extend(common);
    let (ok, out, err) = cnnzoo(&se);
    assert!(ok, "{err}");
    assert!(out.contains("stages.2.2"), "{out}");
    assert!(stats_dir.join("se_stats.png").is_file());

    let mut wrong = vec!["eval", "--model", "resnet56", "--weights", best_s];
    wrong.extend(common);
    let (ok, _, err) = cnnzoo(&wrong);
    assert!(!ok && err.contains("checkpoint of resnet20"), "{err}");
}

#[test]
fn pre_activation_dropout_and_drop_path_train_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let data = dir.path().to_str().unwrap();
    let run = dir.path().join("run");
    let common = ["--dataset", "fashion-mnist", "--data-dir", data];
    let mut train = vec![
        "train",
        "--model",
        "resnet20",
        "--preact",
        "--block-dropout",
        "0.2",
        "--drop-path",
        "0.3",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        run.to_str().unwrap(),
    ];
    train.extend(common);
    let (ok, _, err) = cnnzoo(&train);
    assert!(ok, "{err}");
    let state = std::fs::read_to_string(run.join("last/state.json")).unwrap();
    for key in [
        "\"preact\": true",
        "\"block_dropout\": 0.2",
        "\"drop_path\": 0.3",
    ] {
        assert!(state.contains(key), "{key} not in {state}");
    }
    // The pre-activation design is rebuilt from the checkpoint (its final BN loads).
    let best = run.join("best");
    let mut eval = vec![
        "eval",
        "--model",
        "resnet20",
        "--weights",
        best.to_str().unwrap(),
    ];
    eval.extend(common);
    let (ok, out, err) = cnnzoo(&eval);
    assert!(ok, "{err}");
    assert!(out.contains("top-1"), "{out}");
    let other = dir.path().join("other");
    let mut bad = train.clone();
    bad[5] = "1.5";
    bad[13] = other.to_str().unwrap();
    let (ok, _, err) = cnnzoo(&bad);
    assert!(!ok && err.contains("probability"), "{err}");
    assert!(
        !other.exists(),
        "a refused design must not create its run folder"
    );
}

#[test]
fn gradflow_compares_arms_and_rejects_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let data = dir.path().to_str().unwrap();
    let out = dir.path().join("gf");
    let gradflow = |extra: &[&str]| {
        let mut args = vec!["gradflow", "--dataset", "fashion-mnist", "--data-dir", data];
        args.extend(extra);
        cnnzoo(&args)
    };
    let (ok, text, err) = gradflow(&[
        "--model",
        "plain20",
        "--act",
        "sigmoid",
        "--norm",
        "none",
        "--arm",
        "resnet20",
        "--arm",
        "resnet20:preact=true,drop_path=0.1",
        "--steps",
        "1",
        "--batch-size",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(text.contains("plain20:act=sigmoid,norm=none") && text.contains("resnet20"));
    for f in [
        "plain20_act_sigmoid_norm_none.csv",
        "resnet20.csv",
        "gradflow.json",
        "gradflow.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let (ok, _, err) = gradflow(&["--arm", "resnet20:act=swish"]);
    assert!(!ok && err.contains("unknown activation"), "{err}");
    let (ok, _, err) = gradflow(&["--act", "tanh"]);
    assert!(!ok && err.contains("give --model"), "{err}");
    let (ok, _, err) = gradflow(&[
        "--model",
        "resnet20",
        "--lr=-1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("learning rate must be positive"),
        "{err}"
    );
    let (ok, _, err) = gradflow(&["--arm", "densenet40_k12", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("residual family"), "{err}");
}

#[test]
fn resnext_forms_agree_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    let (ok, text, err) = cnnzoo(&[
        "experiment",
        "resnext-forms",
        "--model",
        "resnext29_8x64d",
        "--size",
        "8",
        "--repeats",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        text.contains("(a) split") && text.contains("(c) grouped"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(row["relative_diff"].as_f64().unwrap() < 1e-4, "{row}");
        assert_eq!(row["params"], rows[2]["params"]);
        assert_eq!(row["macs"], rows[2]["macs"]);
    }
    assert!(out.join("report.md").is_file());
    let (ok, _, err) = cnnzoo(&["experiment", "resnext-forms", "--model", "resnet20"]);
    assert!(!ok && err.contains("grouped bottleneck"), "{err}");
}

#[test]
fn the_lesion_study_trains_the_twins_and_deletes_blocks() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let data = dir.path().to_str().unwrap();
    let out = dir.path().join("lesion");
    let (ok, text, err) = cnnzoo(&[
        "experiment",
        "lesion",
        "--model",
        "resnet20",
        "--train",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--draws",
        "2",
        "--max-k",
        "2",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(text.contains("resnet20:shortcut=none"), "{text}");
    for f in ["report.md", "lesion.png", "results.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let nets = json.as_array().unwrap();
    assert_eq!(nets.len(), 2);
    assert_eq!(nets[0]["single"].as_array().unwrap().len(), 9);
    assert_eq!(nets[1]["random"].as_array().unwrap().len(), 2);
    // The plain twin's two downsampling blocks cannot be deleted.
    let undeletable = nets[1]["single"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["top1"].is_null())
        .count();
    assert_eq!(undeletable, 2);
    let (ok, _, err) = cnnzoo(&["experiment", "lesion", "--dataset", "fashion-mnist"]);
    assert!(!ok && err.contains("--weights"), "{err}");
    let (ok, _, err) = cnnzoo(&["experiment", "nonsense"]);
    assert!(!ok && err.contains("unrecognized subcommand"), "{err}");
}
