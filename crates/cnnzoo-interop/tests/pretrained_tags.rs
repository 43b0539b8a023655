//! The pretrained tag table (`src/pretrained/tags.rs`) against timm's own list, recorded by
//! `reference/pretrained_tags.py` in `tests/fixtures/timm_pretrained.json`: the same tags, the
//! same default per architecture, the same pretrained_cfg, and every architecture registered.

use std::collections::{BTreeMap, BTreeSet};

use cnnzoo_interop::pretrained::{PretrainedTag, TAGS, resolve};
use serde::Deserialize;

#[derive(Deserialize)]
struct Cfg {
    hf_hub_id: String,
    input_size: [usize; 3],
    interpolation: String,
    crop_pct: f64,
    crop_mode: String,
    mean: [f64; 3],
    std: [f64; 3],
    num_classes: usize,
    label_offset: usize,
}

#[derive(Deserialize)]
struct Arch {
    default: String,
    tags: BTreeMap<String, Cfg>,
}

#[derive(Deserialize)]
struct Fixture {
    archs: BTreeMap<String, Arch>,
}

#[test]
fn the_tag_table_matches_timm() {
    let text = include_str!("fixtures/timm_pretrained.json");
    let fixture: Fixture = serde_json::from_str(text).unwrap();
    let ours: BTreeSet<String> = TAGS.iter().map(PretrainedTag::name).collect();
    let timms: BTreeSet<String> = fixture
        .archs
        .iter()
        .flat_map(|(a, v)| v.tags.keys().map(move |t| format!("{a}.{t}")))
        .collect();
    assert_eq!(ours, timms, "regenerate with reference/pretrained_tags.py");
    for (arch, a) in &fixture.archs {
        assert!(
            cnnzoo_models::spec(arch).is_ok(),
            "{arch} is not registered"
        );
        assert_eq!(
            resolve(arch).unwrap().tag,
            a.default,
            "default tag of {arch}"
        );
        for (tag, c) in &a.tags {
            let t = resolve(&format!("{arch}.{tag}")).unwrap();
            assert_eq!(t.hf_hub_id, c.hf_hub_id);
            assert_eq!(t.input_size, c.input_size);
            assert_eq!(t.interpolation, c.interpolation);
            assert_eq!(t.crop_pct, c.crop_pct);
            assert_eq!(t.crop_mode, c.crop_mode);
            assert_eq!((t.mean, t.std), (c.mean, c.std));
            assert_eq!(
                (t.num_classes, t.label_offset),
                (c.num_classes, c.label_offset)
            );
        }
    }
}
