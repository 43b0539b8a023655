#!/usr/bin/env python3
"""Generates the logits-parity fixtures of cnnzoo-interop's tests (tests/fixtures/*.json).

For every ImageNet model of cnnzoo's registry it builds the PyTorch model (timm, or torchvision
where timm has none), fills every tensor of its state dict by the deterministic formula below,
runs an eval-mode forward pass on a deterministic input and records the (key, shape) list and
the logits. The Rust tests rebuild the same tensors by the same formula, write them to a
safetensors file under these keys, load it through cnnzoo's loader and compare the logits.

Formula (computed in float64, stored as float32), for tensor KEY of shape S, flat index i:
    a = 0.37 * i + 0.01 * (fnv1a32(KEY) % 997)
    running_var: 1 + 0.25 * (1 + sin a)          running_mean: 0.1 * sin a
    other 1-D (BN weight / bias, conv / linear bias): weight 1 + 0.1 sin a, bias 0.1 sin a
    >= 2-D weights: 2 * sin(a) / sqrt(fan_in), fan_in = prod(S[1:])
Input x of shape [1, 3, H, W], flat index i: sin(0.013 * i).

Regenerate (needs torch, torchvision, timm from PyPI):
    python crates/cnnzoo-interop/reference/make_fixtures.py crates/cnnzoo-interop/tests/fixtures
It also checks that torchvision's keys equal timm's for the models both have, which is why
the tests need one key layout per model (plus torchvision's auxiliary heads, see the loader).
"""

import json
import math
import pathlib
import sys

import numpy as np
import timm
import torch
import torchvision

TIMM = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200",
    "wide_resnet50_2", "wide_resnet101_2", "resnetv2_50", "resnetv2_101",
    "resnet18d", "resnet26d", "resnet50d", "resnet101d", "resnet152d", "resnet200d",
    "resnext50d_32x4d", "seresnext26d_32x4d",
    "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152",
    "seresnext50_32x4d", "seresnext101_32x4d", "seresnext101_32x8d",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "inception_v3", "inception_v4", "inception_resnet_v2",
]
TORCHVISION_SAME = ["resnet18", "resnet50", "resnext50_32x4d", "densenet121", "inception_v3"]


def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def fill(key, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    a = 0.37 * np.arange(n, dtype=np.float64) + 0.01 * (fnv1a32(key) % 997)
    s = np.sin(a)
    if key.endswith("running_var"):
        v = 1.0 + 0.25 * (1.0 + s)
    elif key.endswith("running_mean"):
        v = 0.1 * s
    elif len(shape) <= 1:
        v = 1.0 + 0.1 * s if key.endswith("weight") else 0.1 * s
    else:
        fan_in = int(np.prod(shape[1:]))
        v = 2.0 * s / math.sqrt(fan_in)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def make_input(h, w):
    n = 3 * h * w
    return torch.from_numpy(np.sin(0.013 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(1, 3, h, w))


def fixture(model, name, source, size):
    sd = model.state_dict()
    keys = [(k, list(v.shape)) for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    model.load_state_dict({k: fill(k, s) for k, s in keys}, strict=False)
    model.eval()
    with torch.no_grad():
        logits = model(make_input(size, size))
    if isinstance(logits, tuple):
        logits = logits[0]
    out = logits[0].double().numpy()
    return {
        "model": name,
        "source": source,
        "input": [1, 3, size, size],
        "keys": keys,
        "logits": [float(f"{v:.8g}") for v in out],
    }


def resnet20_checkpoint(dst):
    """A timm-keyed CIFAR ResNet-20 state dict in float16, wrapped as a training checkpoint
    ({"state_dict": ..., "epoch": 3}) and saved with torch.save (zip format): the .pth reader,
    the wrapper stripping and the dtype conversion in one small file."""
    sd = {"conv1.weight": [16, 3, 3, 3]}
    bn = lambda p, c: {f"{p}.{n}": [c] for n in ("weight", "bias", "running_mean", "running_var")}  # noqa: E731
    sd.update(bn("bn1", 16))
    cin = 16
    for s, w in enumerate((16, 32, 64), start=1):
        for b in range(3):
            sd[f"layer{s}.{b}.conv1.weight"] = [w, cin, 3, 3]
            sd.update(bn(f"layer{s}.{b}.bn1", w))
            sd[f"layer{s}.{b}.conv2.weight"] = [w, w, 3, 3]
            sd.update(bn(f"layer{s}.{b}.bn2", w))
            cin = w
    sd["fc.weight"] = [10, 64]
    sd["fc.bias"] = [10]
    state = {k: fill(k, shape).half() for k, shape in sd.items()}
    torch.save({"state_dict": state, "epoch": 3}, dst / "resnet20_f16.pth")


def main():
    dst = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
    dst.mkdir(parents=True, exist_ok=True)
    resnet20_checkpoint(dst)
    if "--pth-only" in sys.argv:
        return
    torch.set_num_threads(1)
    for name in TORCHVISION_SAME:
        kw = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
        tv = [k for k in getattr(torchvision.models, name)(weights=None, **kw).state_dict()
              if not k.endswith("num_batches_tracked")]
        tm = [k for k in timm.create_model(name).state_dict() if not k.endswith("num_batches_tracked")]
        assert tv == tm, f"{name}: torchvision and timm keys differ"
    # `--models a,b` regenerates only those fixtures.
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--models=")),
                None)
    for name in TIMM:
        if only is not None and name not in only:
            continue
        size = 299 if name.startswith("inception") else 224
        f = fixture(timm.create_model(name), name, "timm", size)
        (dst / f"{name}.json").write_text(json.dumps(f, separators=(",", ":")))
        print(name, len(f["keys"]), "keys, max |logit|", max(abs(v) for v in f["logits"]), flush=True)
    if only is not None:
        return
    g = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    f = fixture(g, "googlenet", "torchvision", 224)
    (dst / "googlenet.json").write_text(json.dumps(f, separators=(",", ":")))
    print("googlenet", len(f["keys"]), "keys, max |logit|", max(abs(v) for v in f["logits"]))


if __name__ == "__main__":
    main()
