//! Key mapping tables between PyTorch state-dict keys (timm and torchvision) and cnnzoo's
//! module paths, one table per architecture family, both directions from the same rows.
//!
//! A row pairs two templates. Placeholders: `{s}` a number bound to `s`; `{s+1}` the number
//! `s + 1` (timm's `layer1` is cnnzoo's `stages.0`); `{m@b}` a letter, `b` + `m` (Inception's
//! `Mixed_5b` is `mixed_5.0`); `{*}` the rest of the key (`weight`, `bn.running_var`, ...).

use std::collections::HashMap;
use std::sync::LazyLock;

use cnnzoo_models::Model;
use regex::Regex;

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Num { var: String, offset: i64 },
    Letter { var: String, base: u8 },
    Tail,
}

/// One side of a mapping row.
#[derive(Debug, Clone)]
struct Template {
    pieces: Vec<Piece>,
    regex: Regex,
}

#[derive(Debug, Default, Clone)]
struct Bindings {
    vars: HashMap<String, i64>,
    tail: Option<String>,
}

impl Template {
    fn parse(text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut pattern = String::from("^");
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("unclosed placeholder");
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].to_string()));
                pattern.push_str(&regex::escape(&rest[..open]));
            }
            let inner = &rest[open + 1..close];
            if inner == "*" {
                pieces.push(Piece::Tail);
                pattern.push_str("(.+)");
            } else if let Some((var, base)) = inner.split_once('@') {
                pieces.push(Piece::Letter {
                    var: var.into(),
                    base: base.as_bytes()[0],
                });
                pattern.push_str("([a-z])");
            } else {
                let (var, offset) = match inner.split_once('+') {
                    Some((v, o)) => (v, o.parse().expect("bad offset")),
                    None => (inner, 0),
                };
                pieces.push(Piece::Num {
                    var: var.into(),
                    offset,
                });
                pattern.push_str(r"(\d+)");
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
            pattern.push_str(&regex::escape(rest));
        }
        pattern.push('$');
        Template {
            pieces,
            regex: Regex::new(&pattern).expect("bad template"),
        }
    }

    fn captures(&self, key: &str) -> Option<Bindings> {
        let caps = self.regex.captures(key)?;
        let mut b = Bindings::default();
        let mut group = 1;
        for piece in &self.pieces {
            let text = match piece {
                Piece::Lit(_) => continue,
                _ => caps.get(group)?.as_str(),
            };
            group += 1;
            let value = match piece {
                Piece::Num { offset, .. } => text.parse::<i64>().ok()? - offset,
                Piece::Letter { base, .. } => i64::from(text.as_bytes()[0]) - i64::from(*base),
                Piece::Tail => {
                    b.tail = Some(text.to_string());
                    continue;
                }
                Piece::Lit(_) => unreachable!(),
            };
            if value < 0 {
                return None;
            }
            let var = match piece {
                Piece::Num { var, .. } | Piece::Letter { var, .. } => var.clone(),
                _ => unreachable!(),
            };
            if b.vars.insert(var, value).is_some_and(|old| old != value) {
                return None;
            }
        }
        Some(b)
    }

    fn render(&self, b: &Bindings) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Num { var, offset } => {
                    out.push_str(&(b.vars.get(var)? + offset).to_string());
                }
                Piece::Letter { var, base } => {
                    out.push((i64::from(*base) + b.vars.get(var)?) as u8 as char);
                }
                Piece::Tail => out.push_str(b.tail.as_deref()?),
            }
        }
        Some(out)
    }
}

/// A row: a PyTorch key template and the cnnzoo path template it corresponds to.
#[derive(Debug, Clone)]
struct Row {
    torch: Template,
    ours: Template,
    /// Legacy spellings accepted when loading, never written.
    import_only: bool,
}

/// The mapping table of one architecture family.
#[derive(Debug, Clone)]
pub struct Table {
    /// Family name, for messages.
    pub family: &'static str,
    rows: Vec<Row>,
}

impl Table {
    fn new<S: AsRef<str>>(family: &'static str, rows: &[(S, S)], legacy: &[(S, S)]) -> Table {
        let row = |(t, o): &(S, S), import_only| Row {
            torch: Template::parse(t.as_ref()),
            ours: Template::parse(o.as_ref()),
            import_only,
        };
        Table {
            family,
            rows: rows
                .iter()
                .map(|r| row(r, false))
                .chain(legacy.iter().map(|r| row(r, true)))
                .collect(),
        }
    }

    /// The cnnzoo path for a PyTorch key (first matching row), or `None`.
    pub fn to_cnnzoo(&self, key: &str) -> Option<String> {
        self.rows
            .iter()
            .find_map(|r| r.torch.captures(key).and_then(|b| r.ours.render(&b)))
    }

    /// The timm / torchvision key for a cnnzoo path, or `None`.
    pub fn to_torch(&self, path: &str) -> Option<String> {
        self.rows
            .iter()
            .filter(|r| !r.import_only)
            .find_map(|r| r.ours.captures(path).and_then(|b| r.torch.render(&b)))
    }
}

/// timm's `ResNet` rows; `deep`: the deep stem's `conv1.0` ... `conv1.6`; `avg_down`: the
/// projection after an average pool (`downsample.1`, `downsample.2`).
fn resnet_rows(deep: bool, avg_down: bool) -> Vec<(&'static str, &'static str)> {
    let mut rows = if deep {
        vec![
            ("conv1.0.{*}", "stem.deep.0.conv.{*}"),
            ("conv1.1.{*}", "stem.deep.0.bn.{*}"),
            ("conv1.3.{*}", "stem.deep.1.conv.{*}"),
            ("conv1.4.{*}", "stem.deep.1.bn.{*}"),
            ("conv1.6.{*}", "stem.conv.conv.{*}"),
        ]
    } else {
        vec![("conv1.{*}", "stem.conv.conv.{*}")]
    };
    let (conv, bn) = if avg_down {
        (
            "layer{s+1}.{b}.downsample.1.{*}",
            "layer{s+1}.{b}.downsample.2.{*}",
        )
    } else {
        (
            "layer{s+1}.{b}.downsample.0.{*}",
            "layer{s+1}.{b}.downsample.1.{*}",
        )
    };
    rows.extend([
        ("bn1.{*}", "stem.conv.bn.{*}"),
        (
            "layer{s+1}.{b}.conv{c}.{*}",
            "stages.{s}.{b}.conv{c}.conv.{*}",
        ),
        ("layer{s+1}.{b}.bn{c}.{*}", "stages.{s}.{b}.conv{c}.bn.{*}"),
        ("layer{s+1}.{b}.se.{*}", "stages.{s}.{b}.se.{*}"),
        (conv, "stages.{s}.{b}.downsample.conv.{*}"),
        (bn, "stages.{s}.{b}.downsample.bn.{*}"),
        ("fc.{*}", "head.fc.{*}"),
    ]);
    rows
}

/// The ResNet tables: plain stem, deep stem, average-pool shortcut, both (ResNet-D).
static RESNET: LazyLock<[Table; 4]> = LazyLock::new(|| {
    [(false, false), (false, true), (true, false), (true, true)]
        .map(|(deep, avg)| Table::new("resnet", &resnet_rows(deep, avg), &[]))
});

/// timm's `ResNetV2` (pre-activation): `norm1` is the block's input BatchNorm, `norm{c+1}` the
/// one after `conv{c}`, `norm` the final one.
static RESNET_V2: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "resnetv2",
        &[
            ("stem.conv.{*}", "stem.conv.conv.{*}"),
            ("stages.{s}.blocks.{b}.norm1.{*}", "stages.{s}.{b}.pre.{*}"),
            (
                "stages.{s}.blocks.{b}.conv{c}.{*}",
                "stages.{s}.{b}.conv{c}.conv.{*}",
            ),
            (
                "stages.{s}.blocks.{b}.norm{c+1}.{*}",
                "stages.{s}.{b}.conv{c}.bn.{*}",
            ),
            (
                "stages.{s}.blocks.{b}.downsample.conv.{*}",
                "stages.{s}.{b}.downsample.conv.{*}",
            ),
            ("stages.{s}.blocks.{b}.se.{*}", "stages.{s}.{b}.se.{*}"),
            ("norm.{*}", "norm.{*}"),
            ("head.fc.{*}", "head.fc.{*}"),
        ],
        &[],
    )
});

static DENSENET: LazyLock<Table> = LazyLock::new(|| {
    let layer = "features.denseblock{b+1}.denselayer{l+1}";
    let ours = "blocks.{b}.layers.{l}";
    let rows: Vec<(String, String)> = vec![
        ("features.conv0.{*}".into(), "stem.conv.conv.{*}".into()),
        ("features.norm0.{*}".into(), "stem.conv.bn.{*}".into()),
        (
            format!("{layer}.norm1.{{*}}"),
            format!("{ours}.bottleneck.bn.{{*}}"),
        ),
        (
            format!("{layer}.conv1.{{*}}"),
            format!("{ours}.bottleneck.conv.{{*}}"),
        ),
        (
            format!("{layer}.norm2.{{*}}"),
            format!("{ours}.conv.bn.{{*}}"),
        ),
        (
            format!("{layer}.conv2.{{*}}"),
            format!("{ours}.conv.conv.{{*}}"),
        ),
        (
            "features.transition{t+1}.norm.{*}".into(),
            "transitions.{t}.unit.bn.{*}".into(),
        ),
        (
            "features.transition{t+1}.conv.{*}".into(),
            "transitions.{t}.unit.conv.{*}".into(),
        ),
        ("features.norm5.{*}".into(), "norm_final.{*}".into()),
        ("classifier.{*}".into(), "head.fc.{*}".into()),
    ];
    // Checkpoints saved before PyTorch 0.4 spell `norm1` as `norm.1` (torchvision rewrites them
    // with the same patterns when it loads them).
    let legacy: Vec<(String, String)> = vec![
        (
            format!("{layer}.norm.1.{{*}}"),
            format!("{ours}.bottleneck.bn.{{*}}"),
        ),
        (
            format!("{layer}.conv.1.{{*}}"),
            format!("{ours}.bottleneck.conv.{{*}}"),
        ),
        (
            format!("{layer}.norm.2.{{*}}"),
            format!("{ours}.conv.bn.{{*}}"),
        ),
        (
            format!("{layer}.conv.2.{{*}}"),
            format!("{ours}.conv.conv.{{*}}"),
        ),
    ];
    Table::new("densenet", &rows, &legacy)
});

static INCEPTION_V3: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "inception_v3",
        &[
            ("Conv2d_1a_3x3.{*}", "conv2d_1a_3x3.{*}"),
            ("Conv2d_2a_3x3.{*}", "conv2d_2a_3x3.{*}"),
            ("Conv2d_2b_3x3.{*}", "conv2d_2b_3x3.{*}"),
            ("Conv2d_3b_1x1.{*}", "conv2d_3b_1x1.{*}"),
            ("Conv2d_4a_3x3.{*}", "conv2d_4a_3x3.{*}"),
            ("Mixed_5{m@b}.branch1x1.{*}", "mixed_5.{m}.branch1x1.{*}"),
            (
                "Mixed_5{m@b}.branch5x5_{i+1}.{*}",
                "mixed_5.{m}.branch5x5.{i}.{*}",
            ),
            (
                "Mixed_5{m@b}.branch3x3dbl_{i+1}.{*}",
                "mixed_5.{m}.branch3x3dbl.{i}.{*}",
            ),
            (
                "Mixed_5{m@b}.branch_pool.{*}",
                "mixed_5.{m}.branch_pool.{*}",
            ),
            ("Mixed_6a.branch3x3.{*}", "mixed_6a.branch3x3.{*}"),
            (
                "Mixed_6a.branch3x3dbl_{i+1}.{*}",
                "mixed_6a.branch3x3dbl.{i}.{*}",
            ),
            ("Mixed_6{m@b}.branch1x1.{*}", "mixed_6.{m}.branch1x1.{*}"),
            (
                "Mixed_6{m@b}.branch7x7_{i+1}.{*}",
                "mixed_6.{m}.branch7x7.{i}.{*}",
            ),
            (
                "Mixed_6{m@b}.branch7x7dbl_{i+1}.{*}",
                "mixed_6.{m}.branch7x7dbl.{i}.{*}",
            ),
            (
                "Mixed_6{m@b}.branch_pool.{*}",
                "mixed_6.{m}.branch_pool.{*}",
            ),
            ("Mixed_7a.branch3x3_{i+1}.{*}", "mixed_7a.branch3x3.{i}.{*}"),
            (
                "Mixed_7a.branch7x7x3_{i+1}.{*}",
                "mixed_7a.branch7x7x3.{i}.{*}",
            ),
            ("Mixed_7{m@b}.branch1x1.{*}", "mixed_7.{m}.branch1x1.{*}"),
            (
                "Mixed_7{m@b}.branch3x3_1.{*}",
                "mixed_7.{m}.branch3x3_1.{*}",
            ),
            (
                "Mixed_7{m@b}.branch3x3_2a.{*}",
                "mixed_7.{m}.branch3x3_2a.{*}",
            ),
            (
                "Mixed_7{m@b}.branch3x3_2b.{*}",
                "mixed_7.{m}.branch3x3_2b.{*}",
            ),
            (
                "Mixed_7{m@b}.branch3x3dbl_{i+1}.{*}",
                "mixed_7.{m}.branch3x3dbl.{i}.{*}",
            ),
            (
                "Mixed_7{m@b}.branch3x3dbl_3a.{*}",
                "mixed_7.{m}.branch3x3dbl_3a.{*}",
            ),
            (
                "Mixed_7{m@b}.branch3x3dbl_3b.{*}",
                "mixed_7.{m}.branch3x3dbl_3b.{*}",
            ),
            (
                "Mixed_7{m@b}.branch_pool.{*}",
                "mixed_7.{m}.branch_pool.{*}",
            ),
            ("AuxLogits.{*}", "aux_logits.{*}"),
            ("fc.{*}", "head.fc.{*}"),
        ],
        &[],
    )
});

static GOOGLENET: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "googlenet",
        &[
            ("conv{c}.{*}", "conv{c}.{*}"),
            (
                "inception{n}{m@a}.branch1.{*}",
                "inception{n}.{m}.branch1.{*}",
            ),
            (
                "inception{n}{m@a}.branch2.{i}.{*}",
                "inception{n}.{m}.branch2.{i}.{*}",
            ),
            (
                "inception{n}{m@a}.branch3.{i}.{*}",
                "inception{n}.{m}.branch3.{i}.{*}",
            ),
            (
                "inception{n}{m@a}.branch4.1.{*}",
                "inception{n}.{m}.branch4.{*}",
            ),
            ("aux{k}.{*}", "aux{k}.{*}"),
            ("fc.{*}", "head.fc.{*}"),
        ],
        &[],
    )
});

/// timm's Inception-v4: `features.N` numbers the modules; the ones after an average pool keep
/// their 1x1 at `branch3.1`. Later ranges come first, as the first matching row wins.
static INCEPTION_V4: LazyLock<Table> = LazyLock::new(|| {
    let mut rows: Vec<(String, String)> = Vec::new();
    for (first, name) in [(19, "inception_c"), (11, "inception_b"), (6, "inception_a")] {
        rows.push((
            format!("features.{{i+{first}}}.branch3.1.{{*}}"),
            format!("{name}.{{i}}.branch3.{{*}}"),
        ));
        rows.push((
            format!("features.{{i+{first}}}.{{*}}"),
            format!("{name}.{{i}}.{{*}}"),
        ));
        let single = match first {
            19 => Some((18, "reduction_b")),
            11 => Some((10, "reduction_a")),
            _ => None,
        };
        if let Some((n, module)) = single {
            rows.push((format!("features.{n}.{{*}}"), format!("{module}.{{*}}")));
        }
    }
    for (n, module) in [(5, "mixed_5a"), (4, "mixed_4a"), (3, "mixed_3a")] {
        rows.push((format!("features.{n}.{{*}}"), format!("{module}.{{*}}")));
    }
    rows.push(("features.{i}.{*}".into(), "stem.{i}.{*}".into()));
    rows.push(("last_linear.{*}".into(), "head.fc.{*}".into()));
    Table::new("inception_v4", &rows, &[])
});

/// timm's Inception-ResNet-v2: the same names but Mixed_5b's pooled 1x1 and the classifier.
static INCEPTION_RESNET_V2: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "inception_resnet_v2",
        &[
            ("mixed_5b.branch3.1.{*}", "mixed_5b.branch3.{*}"),
            ("classif.{*}", "head.fc.{*}"),
            ("{*}", "{*}"),
        ],
        &[],
    )
});

/// The mapping table for a built model.
pub fn table_for(model: &Model) -> &'static Table {
    match model {
        Model::ResNet(net) if net.is_preact() => &RESNET_V2,
        Model::ResNet(net) => {
            let deep = !net.stem.deep.is_empty();
            &RESNET[usize::from(deep) * 2 + usize::from(net.avg_down)]
        }
        Model::DenseNet(_) => &DENSENET,
        Model::GoogLeNet(_) => &GOOGLENET,
        Model::InceptionV3(_) => &INCEPTION_V3,
        Model::InceptionV4(_) => &INCEPTION_V4,
        Model::InceptionResNetV2(_) => &INCEPTION_RESNET_V2,
    }
}

/// True for the auxiliary classifiers of GoogLeNet / Inception-v3, which torchvision's
/// checkpoints carry and cnnzoo's default models leave out.
pub fn is_aux(path: &str) -> bool {
    path.starts_with("aux1.") || path.starts_with("aux2.") || path.starts_with("aux_logits.")
}

/// True for the classifier's tensors (replaced by `--reset-classifier`).
pub fn is_classifier(path: &str) -> bool {
    path.starts_with("head.fc.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_rows_go_both_ways() {
        let t = &RESNET[0];
        for (torch, ours) in [
            ("conv1.weight", "stem.conv.conv.weight"),
            ("bn1.running_var", "stem.conv.bn.running_var"),
            ("layer1.0.conv2.weight", "stages.0.0.conv2.conv.weight"),
            ("layer4.2.bn3.bias", "stages.3.2.conv3.bn.bias"),
            (
                "layer3.0.downsample.0.weight",
                "stages.2.0.downsample.conv.weight",
            ),
            (
                "layer3.0.downsample.1.weight",
                "stages.2.0.downsample.bn.weight",
            ),
            ("layer2.1.se.fc1.bias", "stages.1.1.se.fc1.bias"),
            ("fc.weight", "head.fc.weight"),
        ] {
            assert_eq!(t.to_cnnzoo(torch).as_deref(), Some(ours), "{torch}");
            assert_eq!(t.to_torch(ours).as_deref(), Some(torch), "{ours}");
        }
        assert_eq!(t.to_cnnzoo("layer0.0.conv1.weight"), None);
        assert_eq!(t.to_cnnzoo("head.weight"), None);
    }

    #[test]
    fn densenet_legacy_keys_load_but_are_never_written() {
        let t = &*DENSENET;
        let path = "blocks.0.layers.0.bottleneck.bn.weight";
        assert_eq!(
            t.to_cnnzoo("features.denseblock1.denselayer1.norm.1.weight")
                .as_deref(),
            Some(path)
        );
        assert_eq!(
            t.to_torch(path).as_deref(),
            Some("features.denseblock1.denselayer1.norm1.weight")
        );
        assert_eq!(
            t.to_cnnzoo("features.transition3.conv.weight").as_deref(),
            Some("transitions.2.unit.conv.weight")
        );
    }

    #[test]
    fn inception_letters_count_from_their_first_module() {
        let t = &*INCEPTION_V3;
        assert_eq!(
            t.to_cnnzoo("Mixed_6e.branch7x7dbl_5.bn.running_mean")
                .as_deref(),
            Some("mixed_6.3.branch7x7dbl.4.bn.running_mean")
        );
        assert_eq!(
            t.to_cnnzoo("Mixed_6a.branch3x3dbl_2.conv.weight")
                .as_deref(),
            Some("mixed_6a.branch3x3dbl.1.conv.weight")
        );
        assert_eq!(
            t.to_cnnzoo("Mixed_7c.branch3x3dbl_3b.conv.weight")
                .as_deref(),
            Some("mixed_7.1.branch3x3dbl_3b.conv.weight")
        );
        assert_eq!(
            t.to_torch("mixed_5.2.branch5x5.1.conv.weight").as_deref(),
            Some("Mixed_5d.branch5x5_2.conv.weight")
        );
        let g = &*GOOGLENET;
        assert_eq!(
            g.to_cnnzoo("inception4e.branch4.1.conv.weight").as_deref(),
            Some("inception4.4.branch4.conv.weight")
        );
        assert_eq!(
            g.to_torch("inception3.1.branch2.1.bn.weight").as_deref(),
            Some("inception3b.branch2.1.bn.weight")
        );
    }
}
