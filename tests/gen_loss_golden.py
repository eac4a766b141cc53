#!/usr/bin/env python3
"""Writes tests/data/loss_golden.bin: the contrastive loss of include/clcl/loss.h computed by
PyTorch (autograd, float64) for a few cases, read by tests/test_loss.c (matches_pytorch_golden).

Run from the repository root with a Python that has torch (Debian: python3-torch):

    python3 tests/gen_loss_golden.py [tests/data/loss_golden.bin]

The inputs are redrawn until no similarity lies within MARGIN of the threshold and no capped
row has its cap-th and next candidate within MARGIN, so float32 kernels and this float64
reference agree on every mask.

Format (little-endian): b"CLCLLSG1", u32 version (1), u32 case count; then per case
i32 2N, d, mode (0 attract, 1 eliminate), cap; f64 weight, tau, theta, loss;
i64 pseudo-positives kept, of them same-label, same-label others;
f32 h[2N * d]; i32 labels[2N]; f32 dL/dh[2N * d].
"""
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC = b"CLCLLSG1"
VERSION = 1
MARGIN = 1e-4

# (2N, d, classes, mode, weight, cap, tau, theta quantile or None for "off")
CASES = [
    (6, 3, 2, 0, 1.0, 0, 0.5, 0.5),
    (6, 3, 2, 1, 1.0, 1, 0.2, 0.3),
    (130, 3, 4, 0, 0.5, 3, 0.1, 0.8),
    (96, 128, 10, 1, 1.0, 3, 0.2, 0.9),
    (64, 128, 10, 0, 1.0, 0, 0.2, None),
    (32, 200, 4, 0, 1.0, 3, 0.05, 0.7),
]


def uniform(gen, *shape):
    return torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1


def make_views(n2, d, classes, gen):
    """Two views of n2 / 2 images: class centre + image offset + view noise, scaled rows."""
    n = n2 // 2
    centers = uniform(gen, classes, d)
    cls = torch.randint(classes, (n,), generator=gen)
    base = centers[cls] + 0.6 * uniform(gen, n, d)
    views = []
    for _ in range(2):
        scale = 0.5 + 1.5 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
        views.append((base + 0.35 * uniform(gen, n, d)) * scale)
    return torch.cat(views).float(), torch.cat([cls, cls]).to(torch.int32)


def similarities(h):
    z = F.normalize(h.double(), dim=1, eps=1e-12)
    return z @ z.T


def others_mask(n2):
    idx = torch.arange(n2)
    partner = torch.zeros(n2, n2, dtype=torch.bool)
    partner[idx, (idx + n2 // 2) % n2] = True
    return ~torch.eye(n2, dtype=torch.bool) & ~partner, partner


def make_unambiguous(h, theta, cap, gen):
    n2, d = h.shape
    others, _ = others_mask(n2)
    for _ in range(100):
        s = similarities(h)
        redo = (((s - theta).abs() < MARGIN) & others).any(dim=0)
        if cap > 0:
            ranked = s.masked_fill(~(others & (s > theta)), float("-inf"))
            top = ranked.topk(min(cap + 1, n2), dim=1)
            full = top.values[:, cap] > float("-inf")
            close = full & (top.values[:, cap - 1] - top.values[:, cap] < MARGIN)
            redo[top.indices[close, cap]] = True
        if not redo.any():
            return h
        rows = redo.nonzero().flatten()
        h[rows] = (h[rows].double() + 0.35 * uniform(gen, len(rows), d)).float()
    raise RuntimeError("could not make the masks unambiguous")


def quantile_of_others(h, q):
    n2 = h.shape[0]
    others, _ = others_mask(n2)
    return torch.quantile(similarities(h)[others], q).item()


def loss_and_grad(h32, labels, mode, weight, cap, tau, theta):
    n2 = h32.shape[0]
    h = h32.double().requires_grad_()
    z = F.normalize(h, dim=1, eps=1e-12)
    s = z @ z.T
    others, partner = others_mask(n2)
    eye = torch.eye(n2, dtype=torch.bool)

    # pseudo-positives on the detached similarities, the cap keeping the most similar
    sd = s.detach()
    cand = others & (sd > theta) if theta <= 1 else torch.zeros_like(others)
    if cap > 0:
        ranked = sd.masked_fill(~cand, float("-inf"))
        keep = torch.zeros_like(cand)
        keep.scatter_(1, ranked.topk(min(cap, n2), dim=1).indices, True)
        cand = cand & keep

    logits = s / tau
    if mode == 0:
        denominator = ~eye
        weights = partner.double() + weight * cand.double()
    else:
        denominator = ~eye & ~cand
        weights = partner.double()
    lse = torch.logsumexp(logits.masked_fill(~denominator, float("-inf")), dim=1)
    per_anchor = -(weights * (logits - lse[:, None])).sum(dim=1) / weights.sum(dim=1)
    loss = per_anchor.mean()
    loss.backward()

    same = labels[:, None] == labels[None, :]
    counts = (int(cand.sum()), int((cand & same).sum()), int((same & others).sum()))
    return loss.item(), h.grad.float(), counts


def main():
    torch.set_num_threads(2)
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/loss_golden.bin"
    gen = torch.Generator().manual_seed(20260)
    blobs = []
    for n2, d, classes, mode, weight, cap, tau, q in CASES:
        h, labels = make_views(n2, d, classes, gen)
        theta = 2.0 if q is None else quantile_of_others(h, q)
        if q is not None:
            h = make_unambiguous(h, theta, cap, gen)
        loss, grad, counts = loss_and_grad(h, labels.long(), mode, weight, cap, tau, theta)
        print(f"2N {n2:4d} d {d:3d} mode {mode} w {weight} cap {cap} tau {tau} "
              f"theta {theta:.6f}: loss {loss:.9f}, pseudo {counts[0]}, same {counts[1]}, "
              f"same others {counts[2]}")
        blobs.append(struct.pack("<4i4d3q", n2, d, mode, cap, weight, tau, theta, loss, *counts))
        blobs.append(h.contiguous().numpy().astype("<f4").tobytes())
        blobs.append(labels.numpy().astype("<i4").tobytes())
        blobs.append(grad.contiguous().numpy().astype("<f4").tobytes())
    with open(out_path, "wb") as f:
        f.write(MAGIC + struct.pack("<2I", VERSION, len(CASES)))
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
