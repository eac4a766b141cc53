#!/usr/bin/python3
"""Trains clcl's Fashion-MNIST recipe in PyTorch on the CPU, to tell what the recipe can reach
from what clcl's implementation reaches: ResNet-18 of bench/torch_step.py (CIFAR stem,
projection F -> F -> BN -> ReLU -> 128, torchvision's initialisation), a class-balanced
subset, random resized crops (scale 0.2-1, ratio 3/4-4/3, bilinear), flips and, with
probability --jitter, brightness and contrast jitter (0.4) in a random order, normalised with
Fashion-MNIST's mean and std, NT-Xent with a constant or linearly rising temperature,
SGD with momentum 0.9 and weight decay on weights only, a linear warm-up and cosine decay per
step, the loss multiplied by tau / tau(0) unless --loss-scale none (clcl's default). The
weighted kNN monitor (k 200, temperature 0.1, cosine on the pooled backbone
features, the training subset as the bank, all test images as queries) runs on the untrained
network and every --eval-every epochs. No false-negative detection: this is the SimCLR
baseline (and tau-only runs with --tau linear:A:B).

    /usr/bin/python3 bench/torch_train.py [--data DIR] [--subset 12288] [--epochs 12]
        [--batch 128] [--width 0.125] [--lr 0.3] [--tau constant:0.1] [--loss-scale tau]
        [--jitter 0.8] [--eval-every 6] [--seed 0] [--threads 2]
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_step import ResNet18  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data, split):
    x = read_idx(os.path.join(data, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data, f"{split}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def balanced_subset(y, n, gen):
    classes = int(y.max()) + 1
    picks = [torch.nonzero(y == c).flatten() for c in range(classes)]
    picks = [p[torch.randperm(len(p), generator=gen)[:n // classes]] for p in picks]
    return torch.cat(picks)


def crop_boxes(n, size, gen):
    """torchvision's RandomResizedCrop.get_params, per view: (x0, y0, w, h) in pixels."""
    boxes = []
    area = size * size
    for _ in range(n):
        for _ in range(10):
            a = area * (0.2 + 0.8 * torch.rand(1, generator=gen).item())
            r = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) *
                         torch.rand(1, generator=gen).item())
            w, h = round(math.sqrt(a * r)), round(math.sqrt(a / r))
            if 0 < w <= size and 0 < h <= size:
                x0 = torch.randint(0, size - w + 1, (1,), generator=gen).item()
                y0 = torch.randint(0, size - h + 1, (1,), generator=gen).item()
                boxes.append((x0, y0, w, h))
                break
        else:
            boxes.append((0, 0, size, size))
    return torch.tensor(boxes, dtype=torch.float32)


def jitter(x, gen, p, strength):
    """With probability p per view, brightness and contrast factors in [1 - s, 1 + s] applied in
    a random order (what ColorJitter does to a one-channel image: its saturation and hue leave
    grey unchanged), on the 0..1 scale with the result clamped to it."""
    n = x.shape[0]
    on = (torch.rand(n, generator=gen) < p).view(n, 1, 1, 1)
    fb = (1 - strength + 2 * strength * torch.rand(n, generator=gen)).view(n, 1, 1, 1)
    fc = (1 - strength + 2 * strength * torch.rand(n, generator=gen)).view(n, 1, 1, 1)
    first = (torch.rand(n, generator=gen) < 0.5).view(n, 1, 1, 1)

    def bright(v):
        return (v * fb).clamp(0, 1)

    def contrast(v):
        return (fc * v + (1 - fc) * v.mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)

    out = torch.where(first, contrast(bright(x)), bright(contrast(x)))
    return torch.where(on, out, x)


def augment(x, gen, jitter_p=0.0, strength=0.4):
    """Crops each image's box and resizes it bilinearly (align_corners=False), flips half, then
    jitters brightness and contrast with probability jitter_p."""
    n, _, size, _ = x.shape
    b = crop_boxes(n, size, gen)
    flip = torch.rand(n, generator=gen) < 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = b[:, 2] / size * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = (2 * b[:, 0] + b[:, 2]) / size - 1
    theta[:, 1, 1] = b[:, 3] / size
    theta[:, 1, 2] = (2 * b[:, 1] + b[:, 3]) / size - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", align_corners=False)
    if jitter_p > 0:
        v = jitter(v, gen, jitter_p, strength)
    return (v - MEAN) / STD


def schedule(spec, t):
    kind, *v = spec.split(":")
    v = [float(s) for s in v]
    if kind == "constant":
        return v[0]
    if kind == "linear":
        return v[0] + (v[1] - v[0]) * t
    raise SystemExit(f"torch_train: --tau {spec}: expected constant:V or linear:A:B")


def nt_xent(h, tau):
    n2 = h.shape[0]
    z = F.normalize(h, dim=1)
    s = (z @ z.T / tau).masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(s, (torch.arange(n2) + n2 // 2) % n2)


@torch.no_grad()
def features(model, x, batch=512):
    model.eval()
    out = [torch.flatten(F.adaptive_avg_pool2d(model.layers(model.stem((x[i:i + batch] - MEAN) / STD)), 1), 1)
           for i in range(0, len(x), batch)]
    model.train()
    return F.normalize(torch.cat(out), dim=1)


@torch.no_grad()
def knn(model, bank_x, bank_y, test_x, test_y, k=200, t=0.1, classes=10):
    bank, queries = features(model, bank_x), features(model, test_x)
    correct = 0
    for i in range(0, len(queries), 1000):
        sim, idx = (queries[i:i + 1000] @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), classes).scatter_add_(1, bank_y[idx], (sim / t).exp())
        correct += (votes.argmax(1) == test_y[i:i + 1000]).sum().item()
    return correct / len(queries)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--subset", type=int, default=12288)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--tau", default="constant:0.1")
    p.add_argument("--loss-scale", choices=("tau", "none"), default="tau",
                   help="tau: the loss times tau / (tau at step 0), as clcl's --loss-scale")
    p.add_argument("--jitter", type=float, default=0.8,
                   help="probability of brightness and contrast jitter per view")
    p.add_argument("--jitter-strength", type=float, default=0.4)
    p.add_argument("--eval-every", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "t10k")
    pick = balanced_subset(train_y, a.subset, gen)
    train_x, train_y = train_x[pick], train_y[pick]

    model = ResNet18(1, a.width, True)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    decay = [q for q in model.parameters() if q.dim() > 1]
    rest = [q for q in model.parameters() if q.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": rest, "weight_decay": 0.0}], lr=a.lr, momentum=0.9)

    steps_per_epoch = len(train_x) // a.batch
    total, warmup = a.epochs * steps_per_epoch, round(a.warmup_epochs * steps_per_epoch)
    print(f"PyTorch {torch.__version__}, {a.threads} threads; {vars(a)}", flush=True)
    print(f"epoch 0: knn top-1 {knn(model, train_x, train_y, test_x, test_y):.4f}", flush=True)
    step, start = 0, time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        order, losses, t0 = torch.randperm(len(train_x), generator=gen), [], time.perf_counter()
        for s in range(steps_per_epoch):
            lr = (a.lr * (step + 1) / warmup if step < warmup else
                  a.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
            for g in opt.param_groups:
                g["lr"] = lr
            x = train_x[order[s * a.batch:(s + 1) * a.batch]]
            tau = schedule(a.tau, step / max(1, total - 1))
            views = [augment(x, gen, a.jitter, a.jitter_strength) for _ in range(2)]
            loss = nt_xent(model(torch.cat(views)), tau)
            if a.loss_scale == "tau":
                loss = loss * (tau / schedule(a.tau, 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        line = (f"epoch {epoch}: loss {sum(losses) / len(losses):.4f}, "
                f"{steps_per_epoch * a.batch / (time.perf_counter() - t0):.0f} images/s")
        if epoch % a.eval_every == 0 or epoch == a.epochs:
            line += f", knn top-1 {knn(model, train_x, train_y, test_x, test_y):.4f}"
        print(line, flush=True)
    print(f"wall {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
