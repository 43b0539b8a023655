#!/usr/bin/env python3
"""PyTorch side of `bench/cpu.sh`: times the network, batch, input, threads and mode that
`cnnzoo bench` times, and prints one JSON object with the same keys.

train: forward, cross-entropy, backward, SGD step (lr 0.01, momentum 0.9, weight decay 5e-4:
cnnzoo bench's optimiser); infer: eval-mode forward under torch.inference_mode (`--fuse-bn`:
BatchNorm folded into the convolutions by torch.fx's fuse pass, like `cnnzoo bench --fuse-bn`).
Input N(0, 1), labels i % classes. images_per_sec is the median over timed iterations after a warm-up.

The CIFAR networks are written out here (timm and torchvision have none) to match cnnzoo's
registry: the script checks each one's parameter count against `--expect-params` when given.
ImageNet networks come from timm.
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Se(nn.Module):
    """timm's SE: reduced width make_divisible(c / 16, 8), biased 1x1 convs, sigmoid gate."""

    def __init__(self, c, r=16, divisor=8):
        super().__init__()
        rd = max(divisor, int(c / r + divisor / 2) // divisor * divisor)
        self.fc1, self.fc2 = nn.Conv2d(c, rd, 1), nn.Conv2d(rd, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class BasicA(nn.Module):
    """CIFAR basic block with option-A (subsample + zero-pad) shortcut, optional SE."""

    def __init__(self, cin, cout, stride, se):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = Se(cout) if se else nn.Identity()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        y = self.se(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        s = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            s = F.pad(s, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + s)


class Bottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 to width, grouped 3x3, 1x1 to 4 x planes; projection (B)."""

    def __init__(self, cin, planes, stride, groups, base_width):
        super().__init__()
        width = planes * base_width // 64 * groups
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


def cifar_stem(cin, width):
    return nn.Sequential(nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())


class CifarResNet(nn.Module):
    def __init__(self, depth, se=False, in_chans=3, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        blocks, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(n):
                blocks.append(BasicA(cin, width, 2 if (i and not j) else 1, se))
                cin = width
        self.body = nn.Sequential(cifar_stem(in_chans, 16), *blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class CifarResNeXt(nn.Module):
    def __init__(self, groups, base_width, in_chans=3, classes=10):
        super().__init__()
        blocks, cin = [], 64
        for i, planes in enumerate((64, 128, 256)):
            for j in range(3):
                blocks.append(Bottleneck(cin, planes, 2 if (i and not j) else 1, groups, base_width))
                cin = planes * 4
        self.body = nn.Sequential(cifar_stem(in_chans, 64), *blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        mid = bn_size * growth
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, growth, 3, 1, 1, bias=False)

    def forward(self, feats):
        y = self.conv1(F.relu(self.bn1(torch.cat(feats, 1))))
        return self.conv2(F.relu(self.bn2(y)))


class DenseBlock(nn.Module):
    def __init__(self, layers, cin, growth, bn_size):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth, bn_size) for i in range(layers))

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(feats))
        return torch.cat(feats, 1)


class CifarDenseNetBC(nn.Module):
    def __init__(self, depth, growth, in_chans=3, classes=10):
        super().__init__()
        per = (depth - 4) // 6
        c = 2 * growth
        # Biased stem conv, as in the original Torch code and cnnzoo.
        parts = [nn.Conv2d(in_chans, c, 3, 1, 1)]
        for i in range(3):
            parts.append(DenseBlock(per, c, growth, 4))
            c += per * growth
            if i < 2:
                out = c // 2
                parts += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, out, 1, bias=False), nn.AvgPool2d(2)]
                c = out
        parts += [nn.BatchNorm2d(c), nn.ReLU()]
        self.body = nn.Sequential(*parts)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


def build(name, in_chans, classes):
    cifar = {
        "resnet20": lambda: CifarResNet(20, False, in_chans, classes),
        "resnet56": lambda: CifarResNet(56, False, in_chans, classes),
        "resnet110": lambda: CifarResNet(110, False, in_chans, classes),
        "seresnet20": lambda: CifarResNet(20, True, in_chans, classes),
        "seresnet56": lambda: CifarResNet(56, True, in_chans, classes),
        "resnext29_8x64d": lambda: CifarResNeXt(8, 64, in_chans, classes),
        "resnext29_16x64d": lambda: CifarResNeXt(16, 64, in_chans, classes),
        "densenet_bc100_k12": lambda: CifarDenseNetBC(100, 12, in_chans, classes),
    }
    if name in cifar:
        return cifar[name]()
    import timm

    return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=classes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input", required=True, help="CxHxW")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--fuse-bn", action="store_true", help="fold BN into convs (torch.fx)")
    ap.add_argument("--expect-params", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, h, w = (int(v) for v in a.input.lower().split("x"))
    model = build(a.model, c, a.classes)
    params = sum(p.numel() for p in model.parameters())
    if a.expect_params and params != a.expect_params:
        raise SystemExit(f"{a.model}: {params} parameters here, cnnzoo has {a.expect_params}")
    x = torch.randn(a.batch, c, h, w)
    y = torch.arange(a.batch) % a.classes
    times = []
    if a.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    else:
        model.eval()
        if a.fuse_bn:
            from torch.fx.experimental.optimization import fuse

            model = fuse(model)
        with torch.inference_mode():
            for i in range(a.warmup + a.iters):
                t0 = time.perf_counter()
                model(x)
                if i >= a.warmup:
                    times.append(time.perf_counter() - t0)
    rates = sorted(a.batch / t for t in times)
    print(json.dumps({
        "model": a.model, "mode": a.mode, "batch": a.batch, "input": [c, h, w],
        "threads": torch.get_num_threads(), "params": params, "fuse_bn": a.fuse_bn,
        "images_per_sec": statistics.median(rates),
        "images_per_sec_min": rates[0], "images_per_sec_max": rates[-1],
        "iteration_s": times,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
