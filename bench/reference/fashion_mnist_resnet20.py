#!/usr/bin/env python3
"""PyTorch reference for bench/fashion_mnist_resnet20.sh: the same ResNet-20 and recipe as the
cnnzoo arm, written out by hand (torchvision has no CIFAR ResNets).

Model: He et al.'s CIFAR ResNet-20 with a 1-channel stem (3x3 conv 16, BN, ReLU), three stages
of three basic blocks (16/32/64 channels), option-A shortcuts (stride-2 subsampling, zero-padded
channels), global average pool, linear. Convs: Kaiming-normal fan_out; BN weight 1, bias 0;
linear: PyTorch's default. Same initialisation family as cnnzoo, not the same numbers.

Data: the official IDX files; per-sample random crop after 2-px zero padding (in pixel space,
before normalisation) and horizontal flip; normalised by the training set's mean and std.
Optimiser: SGD, Nesterov momentum 0.9, weight decay 5e-4 on all parameters, lr 0.1 with linear
warm-up over the first epoch then cosine to zero, stepped per iteration (cnnzoo's formula).

Writes one JSON line per epoch with cnnzoo's metrics.jsonl keys. images_per_sec counts the
training step alone (forward, loss, backward, optimizer), as cnnzoo does.
"""

import argparse
import gzip
import json
import math
import pathlib
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = pathlib.Path(data_dir) / name
        if p.exists():
            return p
    raise SystemExit(f"missing {stem}[.gz] in {data_dir}")


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            s = F.pad(s, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + s)


class ResNet20(nn.Module):
    def __init__(self, in_chans=1, classes=10, n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(n):
                blocks.append(Block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def augment(x, pad, gen):
    """Per-sample crop after zero padding and horizontal flip, on a uint8 batch [N,1,H,W]."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None].expand(n, h, w)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :].expand(n, h, w)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(2), cols)
    idx = torch.arange(n)[:, None, None].expand(n, h, w)
    return padded[:, 0][idx, rows, cols][:, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subset", type=int, default=0, help="first N training images (smoke tests)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    xtr = torch.from_numpy(read_idx(find(a.data_dir, "train-images-idx3-ubyte")).copy())[:, None]
    ytr = torch.from_numpy(read_idx(find(a.data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(read_idx(find(a.data_dir, "t10k-images-idx3-ubyte")).copy())[:, None]
    yte = torch.from_numpy(read_idx(find(a.data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
    if a.subset:
        xtr, ytr = xtr[: a.subset], ytr[: a.subset]
    scaled = xtr.double() / 255.0
    mean, std = scaled.mean().item(), scaled.std(unbiased=False).item()
    norm = lambda u8: ((u8.float() / 255.0) - mean) / std  # noqa: E731

    model = ResNet20()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batches = math.ceil(len(xtr) / a.batch_size)
    total, warmup = a.epochs * batches, batches

    def lr_at(step):
        if step < warmup:
            return a.lr * (step + 1) / warmup
        t = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.5 * a.lr * (1 + math.cos(math.pi * t))

    out = open(a.out, "w")
    step = 0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        loss_sum = correct = seen = 0
        step_time = 0.0
        for b in range(batches):
            idx = order[b * a.batch_size : (b + 1) * a.batch_size]
            x = norm(augment(xtr[idx], 2, gen))
            y = ytr[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            s0 = time.perf_counter()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_time += time.perf_counter() - s0
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        model.eval()
        tl = t1 = t5 = 0.0
        with torch.no_grad():
            for b in range(0, len(xte), 500):
                logits = model(norm(xte[b : b + 500]))
                y = yte[b : b + 500]
                tl += F.cross_entropy(logits, y, reduction="sum").item()
                top5 = logits.topk(5, 1).indices
                t1 += (top5[:, 0] == y).sum().item()
                t5 += (top5 == y[:, None]).any(1).sum().item()
        m = {
            "epoch": epoch,
            "lr": lr_at(step - 1),
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "test_loss": tl / len(xte),
            "test_top1": t1 / len(xte),
            "test_top5": t5 / len(xte),
            "images_per_sec": seen / step_time,
            "wall_time_s": time.perf_counter() - t0,
        }
        out.write(json.dumps(m) + "\n")
        out.flush()
        print(json.dumps(m), flush=True)


if __name__ == "__main__":
    main()
