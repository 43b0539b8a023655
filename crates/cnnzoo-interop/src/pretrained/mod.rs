//! Pretrained weights by timm's names: `resnet50.a1_in1k`, or a bare architecture for timm's
//! default tag, fetched from the hub repository timm publishes (`timm/<arch>.<tag>`:
//! `model.safetensors` and `config.json`) with the preprocessing its `pretrained_cfg` gives.

mod tags;

use std::path::{Path, PathBuf};

use cnnzoo_models::Model;
use serde::Deserialize;

use crate::error::InteropError;
use crate::hub::Hub;
use crate::predict::{Interpolation, Preprocess};
pub use tags::TAGS;

/// One pretrained weight set timm knows, with its `pretrained_cfg` (see [`TAGS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainedTag {
    /// Architecture (cnnzoo's and timm's registry name).
    pub arch: &'static str,
    /// The tag after the dot (`a1_in1k`).
    pub tag: &'static str,
    /// Whether timm picks this tag for the bare architecture name.
    pub default: bool,
    /// Hub repository of the weights (`timm/resnet50.a1_in1k`).
    pub hf_hub_id: &'static str,
    /// Evaluation input `[C, H, W]`.
    pub input_size: [usize; 3],
    /// Resize filter (`bicubic` or `bilinear`).
    pub interpolation: &'static str,
    /// Crop fraction of the evaluation transform.
    pub crop_pct: f64,
    /// Crop mode (`center`).
    pub crop_mode: &'static str,
    /// Per-channel mean.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// Classes of the classifier (0: the weights have none).
    pub num_classes: usize,
    /// Offset of the class indices (1 for 1001-class TensorFlow ports).
    pub label_offset: usize,
}

impl PretrainedTag {
    /// `arch.tag`, timm's full name.
    pub fn name(&self) -> String {
        format!("{}.{}", self.arch, self.tag)
    }

    /// The evaluation transform this tag's `pretrained_cfg` describes.
    pub fn preprocess(&self) -> Preprocess {
        preprocess(
            self.input_size[1],
            self.crop_pct,
            self.interpolation,
            self.mean,
            self.std,
        )
    }
}

/// Largest input side a `config.json` may ask for.
const MAX_INPUT_SIZE: usize = 4096;

fn preprocess(
    size: usize,
    crop_pct: f64,
    interpolation: &str,
    mean: [f64; 3],
    std: [f64; 3],
) -> Preprocess {
    Preprocess {
        size,
        crop_pct,
        interpolation: if interpolation == "bilinear" {
            Interpolation::Bilinear
        } else {
            Interpolation::Bicubic
        },
        mean: mean.map(|v| v as f32),
        std: std.map(|v| v as f32),
    }
}

/// The tags of one architecture, timm's default first.
pub fn tags_of(arch: &str) -> Vec<&'static PretrainedTag> {
    let mut t: Vec<_> = TAGS.iter().filter(|t| t.arch == arch).collect();
    t.sort_by_key(|t| !t.default);
    t
}

/// Splits `resnet50.a1_in1k` into the architecture and the tag.
pub fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((arch, tag)) => (arch, Some(tag)),
        None => (name, None),
    }
}

/// The tag a model name means: `arch.tag` exactly, or timm's default for a bare `arch`.
/// Unknown names are errors that list the closest known tags.
pub fn resolve(name: &str) -> Result<&'static PretrainedTag, InteropError> {
    let wanted = name.trim().to_ascii_lowercase();
    let (arch, tag) = split(&wanted);
    let found = TAGS.iter().find(|t| match tag {
        Some(tag) => t.arch == arch && t.tag == tag,
        None => t.arch == arch && t.default,
    });
    found.ok_or_else(|| {
        let mut scored: Vec<(f64, String)> = TAGS
            .iter()
            .map(|t| (strsim::jaro_winkler(&wanted, &t.name()), t.name()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let known_arch = TAGS.iter().any(|t| t.arch == arch);
        InteropError::UnknownTag {
            name: name.to_string(),
            reason: if known_arch {
                format!("{arch} has no tag '{}'", tag.unwrap_or(""))
            } else if cnnzoo_models::spec(arch).is_ok() {
                format!("timm publishes no pretrained weights for {arch}")
            } else {
                format!("'{arch}' is not a known architecture")
            },
            suggestions: scored.into_iter().take(3).map(|(_, n)| n).collect(),
        }
    })
}

/// Downloaded (or cached) pretrained weights and how to feed them.
#[derive(Debug, Clone)]
pub struct Pretrained {
    /// The tag.
    pub tag: &'static PretrainedTag,
    /// The timm-keyed `model.safetensors`.
    pub weights: PathBuf,
    /// The evaluation transform of the repository's `config.json` (`pretrained_cfg`).
    pub preprocess: Preprocess,
    /// Class names from `config.json`, when it has them.
    pub label_names: Option<Vec<String>>,
}

/// Fetches a tag's `model.safetensors` and `config.json` through `hub` (cache first).
pub fn fetch(hub: &Hub, tag: &'static PretrainedTag) -> Result<Pretrained, InteropError> {
    if tag.num_classes == 0 {
        return Err(InteropError::Unsupported(format!(
            "{} has no classifier (a feature extractor); pick another tag",
            tag.name()
        )));
    }
    let (weights, config) = fetch_repo(hub, tag.hf_hub_id, "main")?;
    Ok(Pretrained {
        tag,
        weights,
        preprocess: config.preprocess.unwrap_or_else(|| tag.preprocess()),
        label_names: config.label_names,
    })
}

/// timm's `create_model(name, pretrained=True)` in cnnzoo: the model of a pretrained name
/// (`resnet50.a1_in1k`, or a bare architecture for timm's default tag) with its weights loaded
/// strictly, and the evaluation transform its `pretrained_cfg` gives.
pub fn load(
    name: &str,
    hub: &Hub,
    device: &burn::tensor::Device,
) -> Result<(Model, Preprocess), InteropError> {
    let tag = resolve(name)?;
    let p = fetch(hub, tag)?;
    let model = load_weights(tag.arch, &p.weights, device)?;
    Ok((model, p.preprocess))
}

/// Builds the registered `arch` and loads a timm-keyed weights file into it, strictly.
pub fn load_weights(
    arch: &str,
    weights: &Path,
    device: &burn::tensor::Device,
) -> Result<Model, InteropError> {
    let config = cnnzoo_models::create(arch, cnnzoo_models::ModelOptions::default())
        .map_err(|e| InteropError::Unsupported(e.to_string()))?;
    let model = config
        .try_init(device)
        .map_err(|e| InteropError::Unsupported(e.to_string()))?;
    Ok(crate::load::load_file(model, weights, crate::LoadOptions::default())?.0)
}

/// A hub repository's `model.safetensors` and its parsed `config.json`.
pub fn fetch_repo(
    hub: &Hub,
    repo: &str,
    revision: &str,
) -> Result<(PathBuf, RepoConfig), InteropError> {
    let config = read_config(&hub.file(repo, revision, "config.json")?)?;
    let weights = hub.file(repo, revision, "model.safetensors")?;
    Ok((weights, config))
}

/// What cnnzoo reads of a timm repository's `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// The architecture the weights belong to.
    pub architecture: Option<String>,
    /// Classes of the classifier.
    pub num_classes: Option<usize>,
    /// The evaluation transform of `pretrained_cfg`, when it says one.
    pub preprocess: Option<Preprocess>,
    /// Class names, when the file lists them.
    pub label_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawConfig {
    architecture: Option<String>,
    num_classes: Option<usize>,
    label_names: Option<Vec<String>>,
    pretrained_cfg: Option<RawPretrainedCfg>,
}

#[derive(Deserialize)]
struct RawPretrainedCfg {
    input_size: Option<[usize; 3]>,
    interpolation: Option<String>,
    crop_pct: Option<f64>,
    mean: Option<[f64; 3]>,
    std: Option<[f64; 3]>,
}

/// Parses a timm `config.json`.
pub fn read_config(path: &Path) -> Result<RepoConfig, InteropError> {
    let text = std::fs::read_to_string(path).map_err(|e| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_config(&text).map_err(|reason| InteropError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the text of a timm `config.json`; the error says what is wrong.
pub fn parse_config(text: &str) -> Result<RepoConfig, String> {
    let raw: RawConfig =
        serde_json::from_str(text).map_err(|e| format!("not a timm config.json: {e}"))?;
    let preprocess = raw.pretrained_cfg.and_then(|c| {
        Some(preprocess(
            c.input_size?[1],
            c.crop_pct.unwrap_or(0.875),
            c.interpolation.as_deref().unwrap_or("bicubic"),
            c.mean?,
            c.std?,
        ))
    });
    if let Some(p) = &preprocess {
        // Values a damaged or hand-edited file could hold, which would resize to nothing or
        // divide by zero later.
        if !(1..=MAX_INPUT_SIZE).contains(&p.size) {
            return Err(format!(
                "pretrained_cfg.input_size {} is outside 1..={MAX_INPUT_SIZE}",
                p.size
            ));
        }
        if !(p.crop_pct.is_finite() && p.crop_pct > 0.0 && p.crop_pct <= 4.0) {
            return Err(format!(
                "pretrained_cfg.crop_pct {} is outside (0, 4]",
                p.crop_pct
            ));
        }
        if p.mean.iter().any(|m| !m.is_finite())
            || p.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(format!(
                "pretrained_cfg mean {:?} / std {:?}: every mean must be finite and every std positive",
                p.mean, p.std
            ));
        }
    }
    if raw.num_classes == Some(0) {
        return Err("num_classes is 0".into());
    }
    Ok(RepoConfig {
        architecture: raw.architecture,
        num_classes: raw.num_classes,
        preprocess,
        label_names: raw.label_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_take_timms_default_tag() {
        assert_eq!(resolve("resnet50").unwrap().tag, "a1_in1k");
        assert_eq!(resolve("seresnext50_32x4d").unwrap().tag, "racm_in1k");
        assert_eq!(resolve("densenet121").unwrap().tag, "ra_in1k");
        assert_eq!(resolve("inception_v3").unwrap().tag, "tv_in1k");
        let t = resolve("resnet50.tv_in1k").unwrap();
        assert_eq!(t.hf_hub_id, "timm/resnet50.tv_in1k");
        assert_eq!(t.preprocess().interpolation, Interpolation::Bilinear);
    }

    #[test]
    fn config_values_that_would_break_preprocessing_are_refused() {
        let cfg = |size: &str, crop: &str, std: &str| {
            format!(
                r#"{{"architecture":"resnet50","num_classes":1000,"pretrained_cfg":{{"input_size":[3,{size},{size}],"crop_pct":{crop},"mean":[0.5,0.5,0.5],"std":{std}}}}}"#
            )
        };
        let ok = parse_config(&cfg("224", "0.95", "[0.2,0.2,0.2]")).unwrap();
        assert_eq!(ok.preprocess.unwrap().size, 224);
        for (bad, what) in [
            (cfg("0", "0.95", "[0.2,0.2,0.2]"), "input_size"),
            (cfg("224", "0", "[0.2,0.2,0.2]"), "crop_pct"),
            (cfg("224", "-1e308", "[0.2,0.2,0.2]"), "crop_pct"),
            (cfg("224", "0.9", "[0.2,0.0,0.2]"), "std"),
        ] {
            let e = parse_config(&bad).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        assert!(parse_config("{\"num_classes\": 0}").is_err());
        assert!(
            parse_config("[1,2")
                .unwrap_err()
                .contains("not a timm config.json")
        );
    }

    #[test]
    fn unknown_tags_suggest_the_closest() {
        let e = resolve("resnet50.a1_in21k").unwrap_err().to_string();
        assert!(e.contains("resnet50 has no tag 'a1_in21k'"), "{e}");
        assert!(e.contains("resnet50.a1_in1k"), "{e}");
        let e = resolve("resnet20").unwrap_err().to_string();
        assert!(e.contains("no pretrained weights for resnet20"), "{e}");
        let e = resolve("resnet5O").unwrap_err().to_string();
        assert!(e.contains("not a known architecture"), "{e}");
    }
}
