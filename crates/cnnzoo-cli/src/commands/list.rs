//! `cnnzoo list [PATTERN]`: the registry, with family, parameters, MACs and input size.

use anyhow::{Result, bail};
use burn::tensor::Device;
use cnnzoo_models::{ModelOptions, registry};
use serde::Serialize;

use super::{build, summarize};
use crate::format::{shape, si, thousands};

/// Arguments of `cnnzoo list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shell-style pattern on the name ('seres*', 'resnet?0', 'densenet*').
    pattern: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the Markdown table used in the README.
    #[arg(long)]
    markdown: bool,
    /// List timm's pretrained tags of each model (default tag first, marked *) instead.
    #[arg(long)]
    pretrained: bool,
}

/// The pretrained tags of the models matching `pattern`, one line per tag.
fn pretrained_tags(pattern: Option<&str>, json: bool) -> Result<String> {
    use std::fmt::Write;
    let specs = registry::find(pattern.unwrap_or("*"))?;
    let tags: Vec<_> = specs
        .iter()
        .flat_map(|s| cnnzoo_interop::pretrained::tags_of(s.name))
        .collect();
    if tags.is_empty() {
        bail!(
            "timm publishes no pretrained weights for the models matching '{}'",
            pattern.unwrap_or("*")
        );
    }
    if json {
        let rows: Vec<_> = tags
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name(), "default": t.default, "hf_hub_id": t.hf_hub_id,
                    "input_size": t.input_size, "interpolation": t.interpolation,
                    "crop_pct": t.crop_pct, "num_classes": t.num_classes,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows)? + "\n");
    }
    let mut out = format!(
        "{:<44} {:>9} {:>13} {:>8}\n",
        "pretrained (* default)", "input", "interpolation", "crop_pct"
    );
    for t in tags {
        writeln!(
            out,
            "{:<44} {:>9} {:>13} {:>8}",
            format!("{}{}", t.name(), if t.default { " *" } else { "" }),
            shape(&t.input_size),
            t.interpolation,
            t.crop_pct
        )?;
    }
    Ok(out)
}

/// One model of the listing.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Registry name.
    pub name: &'static str,
    /// Family.
    pub family: &'static str,
    /// Trainable parameters at the default class count.
    pub params: u64,
    /// Multiply-accumulates for one image of the default input size.
    pub macs: u64,
    /// Default input `[C, H, W]`.
    pub input: [usize; 3],
    /// Default class count.
    pub num_classes: usize,
    /// What the model is.
    pub description: &'static str,
}

/// Rows for every model matching `pattern` (all when `None`).
pub fn rows(pattern: Option<&str>, device: &Device) -> Result<Vec<Row>> {
    let specs = registry::find(pattern.unwrap_or("*"))?;
    if specs.is_empty() {
        bail!(
            "no model matches '{}' (try `cnnzoo list` for all names)",
            pattern.unwrap_or_default()
        );
    }
    specs
        .into_iter()
        .map(|spec| {
            let built = build(spec.name, ModelOptions::default(), device)?;
            let s = summarize(&built, spec.input)?;
            Ok(Row {
                name: spec.name,
                family: spec.family.name(),
                params: s.params(),
                macs: s.macs(),
                input: spec.input,
                num_classes: spec.num_classes(),
                description: spec.description,
            })
        })
        .collect()
}

/// The README's model table (Markdown), generated from the registry.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| model | family | params | MACs | input | classes |\n|---|---|---:|---:|---|---:|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.family,
            thousands(r.params),
            si(r.macs),
            shape(&r.input),
            r.num_classes
        );
    }
    out
}

/// Runs `cnnzoo list` and returns what it prints.
pub fn run(args: Args, device: &Device) -> Result<String> {
    use std::fmt::Write;
    if args.pretrained {
        return pretrained_tags(args.pattern.as_deref(), args.json);
    }
    let rows = rows(args.pattern.as_deref(), device)?;
    let mut out = String::new();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else if args.markdown {
        out = markdown(&rows);
    } else {
        writeln!(
            out,
            "{:<20} {:<10} {:>14} {:>9} {:>11}  description",
            "model", "family", "params", "MACs", "input"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{:<20} {:<10} {:>14} {:>9} {:>11}  {}",
                r.name,
                r.family,
                thousands(r.params),
                si(r.macs),
                shape(&r.input),
                r.description
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_model_table_is_the_generated_one() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the workspace root");
        let table = markdown(&rows(None, &Device::default()).unwrap());
        assert!(
            readme.contains(&table),
            "README's model table is stale; regenerate it with `cnnzoo list --markdown`:\n{table}"
        );
    }

    #[test]
    fn patterns_filter_and_empty_matches_are_errors() {
        let d = Device::default();
        let names: Vec<_> = rows(Some("seres*"), &d)
            .unwrap()
            .iter()
            .map(|r| r.name)
            .collect();
        assert!(names.contains(&"seresnet50") && names.contains(&"seresnext50_32x4d"));
        assert!(names.iter().all(|n| n.starts_with("seres")));
        assert!(
            rows(Some("vgg*"), &d)
                .unwrap_err()
                .to_string()
                .contains("no model matches")
        );
        assert!(rows(Some("[oops"), &d).is_err());
    }
}
