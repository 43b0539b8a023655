#!/usr/bin/env python3
"""Where a training step's (or an inference batch's) time goes, cnnzoo (perf samples by
symbol) and PyTorch (torch.profiler by operator), grouped into the same categories; part of
bench/profile.sh.

cnnzoo's categories come from the call chains of `perf script` (a sampling profile of
`cnnzoo bench` with DWARF call graphs: each sample counts for the innermost frame naming a
known operation), PyTorch's from its operator names (self CPU time). The two attributions
differ in kind (symbols vs operators), so compare the shares roughly, and the absolute
milliseconds per step (share x measured step time) more than the shares.
"""

import argparse
import collections
import datetime
import json
import pathlib
import re
import subprocess
import time

# A sample counts for the operation of the innermost frame of its call chain (inlined frames
# included) that one of these names; the order breaks ties within one frame's name.
CNNZOO_RULES = [
    # The register tile (`microkernel::tap_tile`) is named by neither rule: it is reached
    # through `conv_block` (direct) or `product_tile` (Winograd's products).
    ("conv forward + input gradient, Winograd F(4x4, 3x3)", r"winograd::|microkernel::product_tile"),
    # The gathered convolutions (ResNet-50's strided 3x3s: the 1x1 kernel over their im2col
    # matrix) land here too: their products run in the same closure as the 1x1s'.
    ("conv forward + input gradient, 1x1 kernel (whole batch; with the gathered strided 3x3s)", r"pointwise::"),
    ("conv forward + input gradient, direct kernels", r"direct::forward|direct::backward_data|direct::conv_block"),
    ("conv weight gradient, direct kernels", r"direct::backward_weight|direct::weight_block|direct::weight_tile"),
    ("conv forward (im2col + GEMM; at inference with bias, residual and ReLU)", r"im2col::forward"),
    ("conv input gradient (im2col + GEMM)", r"im2col::backward_data"),
    ("conv weight gradient (im2col + GEMM)", r"im2col::backward_weight"),
    ("batchnorm (statistics, apply, backward; + ReLU)", r"batch_norm::"),
    # One category: the fused SE end shares its element-wise loops with the plain residual end
    # (identical code is folded into one symbol), so samples cannot be told apart.
    ("residual end (add, ReLU; a standard SE unit fused in) fwd + bwd", r"residual::|squeeze_excite::"),
    ("option A shortcut (subsample, zero channels) fwd + bwd", r"shortcut::zero_pad"),
    ("max pooling (cnnzoo's kernel, inference)", r"pool::max_pool2d"),
    ("optimizer (SGD momentum)", r"optim|sgd"),
    ("model initialisation (random weights; before the timed steps)", r"TensorData::random|ElementRandom|Distribution::sampler|RngExt"),
    ("other tensor ops (Burn flex: element-wise, slices, cat, pooling, loss)", r"burn_flex::|macerator"),
    ("autodiff graph bookkeeping", r"burn_autodiff::"),
    ("allocation, page faults", r"malloc|free|page_fault|clear_page|do_anonymous|mmap|munmap|brk"),
    ("thread pool, synchronisation", r"rayon_core::sleep|futex|sched_yield|__schedule"),
]
CNNZOO_RULES_INIT = next(pat for cat, pat in CNNZOO_RULES if cat.startswith("model init"))
TORCH_RULES = [
    ("convolution backward", r"convolution_backward|slow_conv2d_backward"),
    ("convolution forward", r"^aten::(mkldnn_convolution|_convolution|convolution|conv2d|_nnpack|thnn_conv|_slow_conv2d_forward)"),
    ("batchnorm", r"batch_norm"),
    ("elementwise (ReLU, add, pad, slices)", r"relu|threshold|add|mul|sub|div|pad|slice|copy_|fill_|where"),
    ("reductions (pooling, mean, loss)", r"mean|sum|pool|cross_entropy|log_softmax|nll_loss|softmax"),
    ("optimizer", r"sgd|foreach|Optimizer"),
    ("allocation", r"empty|zeros|resize_|zero_"),
    ("linear", r"addmm|mm|linear"),
]


def categorise(name, rules):
    low = name.lower()
    for cat, pat in rules:
        if re.search(pat, low if "aten" not in name else name):
            return cat
    return "other"


def perf_categories(script_path):
    """Parses `perf script` output of a call-graph recording: one block per sample, its frames
    from the leaf up. Returns the share of samples per category and the top leaf symbols; the
    model's random initialisation (before the timed steps) is left out of both."""
    shares = collections.Counter()
    leaves = collections.Counter()
    total = 0
    for block in pathlib.Path(script_path).read_text(errors="replace").split("\n\n"):
        frames = []
        for line in block.splitlines()[1:]:
            m = re.match(r"\s+[0-9a-f]+\s+(.*?)(?:\s+\(.*\))?$", line)
            if m:
                frames.append(m.group(1))
        if not frames:
            continue
        if any(re.search(CNNZOO_RULES_INIT, f) for f in frames):
            continue
        total += 1
        leaves[re.sub(r"\+0x[0-9a-f]+$", "", frames[0])[:110]] += 1
        category = "other"
        for frame in frames:
            hit = next((cat for cat, pat in CNNZOO_RULES if re.search(pat, frame)), None)
            if hit:
                category = hit
                break
        shares[category] += 1
    pct = {k: 100.0 * v / total for k, v in shares.items()} if total else {}
    tops = [(100.0 * n / total, sym) for sym, n in leaves.most_common(12)]
    return pct, tops


def torch_profile(case, threads, steps):
    import torch
    import torch.nn.functional as F

    import cpu_bench

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c, h, w = case["input"]
    model = cpu_bench.build(case["model"], c, case["classes"])
    x = torch.randn(case["batch"], c, h, w)
    y = torch.arange(case["batch"]) % case["classes"]
    if case["mode"] == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()
        if case["fuse_bn"]:
            from torch.fx.experimental.optimization import fuse

            model = fuse(model)

        def step():
            with torch.inference_mode():
                model(x)

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    shares = collections.Counter()
    total = 0.0
    tops = []
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total):
        total += e.self_cpu_time_total
        shares[categorise(e.key, TORCH_RULES)] += e.self_cpu_time_total
        if len(tops) < 12:
            tops.append((e.self_cpu_time_total, e.key))
    pct = {k: 100.0 * v / total for k, v in shares.items()}
    tops = [(100.0 * t / total, k) for t, k in tops]
    return pct, tops, per_step, torch.__version__


def table(shares, step_s, unit):
    rows = ["| category | share % | ms per " + unit + " |", "|---|---:|---:|"]
    for cat, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {cat} | {pct:.1f} | {pct / 100 * step_s * 1000:.0f} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--perf-script", required=True, help="perf script of a call-graph record")
    ap.add_argument("--cnnzoo-json", required=True, help="cnnzoo bench --json of the same case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10, help="classes of the profiled case")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    a = ap.parse_args()
    bench = json.loads(pathlib.Path(a.cnnzoo_json).read_text())
    case = {
        "model": bench["model"],
        "mode": bench["mode"],
        "batch": bench["batch"],
        "input": bench["input"],
        "classes": a.classes,
        "fuse_bn": bench.get("fuse_bn", False),
    }
    batch = case["batch"]
    cz_step = batch / bench["images_per_sec"]
    cz, cz_top = perf_categories(a.perf_script)
    pt, pt_top, pt_step, version = torch_profile(case, a.threads, a.steps)
    size = "x".join(str(v) for v in case["input"])
    if case["mode"] == "train":
        title = f"Where a {case['model']} training step goes"
        what = "forward + cross-entropy + backward + SGD momentum step"
        unit = "step"
    else:
        title = f"Where a {case['model']} inference batch goes"
        what = "inference forward" + (", BatchNorm folded into the convolutions" if case["fuse_bn"] else "")
        unit = "batch"
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    lines = [
        f"# {title}: cnnzoo (flex) vs PyTorch on the CPU",
        "",
        f"Command: `{a.command}`",
        "",
        f"Measured {datetime.date.today()} on {cpu}, {a.threads} threads, batch {batch}, "
        f"{size}, {what}. cnnzoo: "
        f"{bench['images_per_sec']:.1f} images/s ({cz_step * 1000:.0f} ms per {unit}), attributed "
        f"by `perf` call-graph samples to the operation of their innermost known frame (both "
        f"threads' CPU time: a share is of CPU time, ms = share x step time); PyTorch {version}: "
        f"{batch / pt_step:.1f} images/s ({pt_step * 1000:.0f} ms per {unit}), attributed by "
        "torch.profiler per operator (self CPU time). Symbol and operator categories differ in "
        "kind: read the milliseconds, not only the shares.",
        "",
        "## cnnzoo (Burn 0.22.1 flex)",
        "",
        *table(cz, cz_step, unit),
        "",
        "Top leaf symbols (share of samples; `call_mut` / `consume_iter` are loops inlined into "
        "rayon's closures):",
        "",
        *[f"- {p:.1f}% `{s}`" for p, s in cz_top],
        "",
        "## PyTorch",
        "",
        *table(pt, pt_step, unit),
        "",
        "Top operators (share of self CPU time):",
        "",
        *[f"- {p:.1f}% `{k}`" for p, k in pt_top],
        "",
    ]
    pathlib.Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
