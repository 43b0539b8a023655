//! `experiment resnext-forms`: ResNeXt's forms (a), (b) and (c) (Xie et al. 2017, Fig. 3) run
//! on the same weights and input, showing that they compute one function: per form, the largest
//! difference of the logits against (c), parameters, multiply-accumulates and the time of a
//! forward pass.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use cnnzoo_models::models::resnet::ResNet;
use cnnzoo_models::models::resnext_forms::{Form, FormedNet};
use serde::Serialize;

use crate::error::TrainError;

/// One form's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct FormRow {
    /// `(a) split`, `(b) concat`, `(c) grouped`.
    pub form: String,
    /// Largest |logit difference| against form (c).
    pub max_abs_diff: f64,
    /// `max_abs_diff` over the largest |logit| of form (c).
    pub relative_diff: f64,
    /// Parameters of the whole network in this form (BatchNorm folded into the convolutions).
    pub params: usize,
    /// Multiply-accumulates of one image in this form.
    pub macs: usize,
    /// Convolutions in the grouped bottlenecks (how many kernels a forward pass launches there).
    pub convolutions: usize,
    /// Median milliseconds of a forward pass of the batch.
    pub median_ms: f64,
}

/// The experiment's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FormsResult {
    /// Model name.
    pub model: String,
    /// Input `[N, C, H, W]`.
    pub input: [usize; 4],
    /// Timed forward passes per form.
    pub repeats: usize,
    /// Rows (a), (b), (c).
    pub rows: Vec<FormRow>,
}

/// Pixels entering and leaving each block, in depth order, for input `x`.
fn block_pixels(net: &ResNet, x: Tensor<4>) -> Vec<(usize, usize)> {
    let mut x = net.stem.forward(x);
    let mut sizes = Vec::new();
    for block in net.blocks() {
        let [_, _, h, w] = x.dims();
        x = block.forward(x);
        let [_, _, ho, wo] = x.dims();
        sizes.push((h * w, ho * wo));
    }
    sizes
}

/// Runs the three forms of the BatchNorm-folded `net` (`total_params` and `macs`: the
/// network's own counts, which form (c) is) on one seeded input of `input` shape.
pub fn run(
    model: &str,
    net: &ResNet,
    total_params: usize,
    macs: usize,
    input: [usize; 4],
    repeats: usize,
) -> Result<FormsResult, TrainError> {
    let device = net.stem.conv.conv.weight.device();
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
    let sizes = block_pixels(net, x.clone().narrow(0, 0, 1));
    let formed: Vec<FormedNet> = Form::ALL
        .iter()
        .map(|f| FormedNet::new(net, *f))
        .collect::<Result<_, _>>()
        .map_err(|e| TrainError::Invalid(format!("{model}: {e}")))?;
    let reference = formed[2].forward(x.clone());
    let scale: f32 = reference.clone().abs().max().into_scalar();
    let (grouped_params, grouped_macs) = formed[2].grouped_part_cost(&sizes);
    let mut rows = Vec::new();
    for f in &formed {
        let logits = f.forward(x.clone());
        let diff: f32 = (logits - reference.clone()).abs().max().into_scalar();
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let y = f.forward(x.clone());
            let _: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap_or_default();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let (p, m) = f.grouped_part_cost(&sizes);
        rows.push(FormRow {
            form: f.form().label().to_string(),
            max_abs_diff: f64::from(diff),
            relative_diff: f64::from(diff / scale.max(f32::MIN_POSITIVE)),
            params: total_params - grouped_params + p,
            macs: macs - grouped_macs + m,
            convolutions: f.convolutions(),
            median_ms: times[times.len() / 2],
        });
    }
    Ok(FormsResult {
        model: model.to_string(),
        input,
        repeats,
        rows,
    })
}

/// The markdown report.
pub fn report(r: &FormsResult, command: &str, weights: &str) -> String {
    let mut md = format!(
        "# ResNeXt's three forms: {}\n\nCommand: `{command}`\n\nForm (a): parallel paths (one per group) 1x1 -> 3x3 -> 1x1, summed; (b): paths 1x1 -> 3x3, concatenated, one 1x1; (c): one grouped 3x3 (how cnnzoo and timm build ResNeXt). (a) and (b) are built from (c)'s weights by slicing (path i = group i), BatchNorm folded into the convolutions first, and run on the same input `{:?}` ({weights}). Differences are of the logits against (c); time is the median of {} forward passes.\n\n| form | max abs diff vs (c) | relative | params | MACs / image | convs in grouped blocks | ms / forward |\n|---|---:|---:|---:|---:|---:|---:|\n",
        r.model, r.input, r.repeats,
    );
    for row in &r.rows {
        md += &format!(
            "| {} | {:.3e} | {:.3e} | {} | {} | {} | {:.1} |\n",
            row.form,
            row.max_abs_diff,
            row.relative_diff,
            row.params,
            row.macs,
            row.convolutions,
            row.median_ms
        );
    }
    let same_cost = r
        .rows
        .windows(2)
        .all(|w| w[0].params == w[1].params && w[0].macs == w[1].macs);
    let worst = r.rows.iter().map(|x| x.relative_diff).fold(0.0, f64::max);
    md += &format!(
        "\n## Findings\n\n- The three forms agree to a relative {worst:.1e} of the logits (float32 rounding: the sums run in another order), so they are one function.\n- Parameters and MACs are {} across the forms: the equivalence is a rearrangement, not an approximation.\n",
        if same_cost {
            "identical"
        } else {
            "**not** identical"
        }
    );
    if let (Some(a), Some(c)) = (r.rows.first(), r.rows.last()) {
        md += &format!(
            "- The grouped convolution is what makes it practical: form (a) launches {} convolutions in the grouped blocks where (c) launches {}, and takes {:.1} ms against {:.1} ms per forward here.\n",
            a.convolutions, c.convolutions, a.median_ms, c.median_ms
        );
    }
    md
}
