#!/usr/bin/env python3
"""Times the contrastive loss of include/clcl/loss.h written the usual way in PyTorch (float32,
autograd) on the CPU, for comparison with bench/bench_loss: forward + backward per call,
median and min ms over the repeats after warm-up, GFLOP/s counting 4 (2N)^2 d flops as
bench_loss does. Uses 2 threads (torch.set_num_threads(2)) unless --threads says otherwise.

    python3 bench/torch_loss.py [--sizes 256,512,1024,4096,8192] [--dims 128,256] [--reps 5]
                                [--warmup 2] [--tau 0.2] [--theta 0.8] [--mode attract]
                                [--weight 1] [--cap 0] [--threads 2]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def contrastive_loss(h, tau, theta, mode, weight, cap):
    n2 = h.shape[0]
    z = F.normalize(h, dim=1)
    s = z @ z.T
    idx = torch.arange(n2)
    eye = torch.eye(n2, dtype=torch.bool)
    partner = torch.zeros(n2, n2, dtype=torch.bool)
    partner[idx, (idx + n2 // 2) % n2] = True

    # pseudo-positives on the detached similarities, at most `cap` per anchor
    sd = s.detach()
    cand = (sd > theta) & ~eye & ~partner if theta <= 1 else torch.zeros_like(eye)
    if cap > 0:
        keep = torch.zeros_like(cand)
        keep.scatter_(1, sd.masked_fill(~cand, float("-inf")).topk(cap, dim=1).indices, True)
        cand &= keep

    logits = s / tau
    if mode == "attract":
        denominator = ~eye
        weights = partner.float() + weight * cand.float()
    else:
        denominator = ~eye & ~cand
        weights = partner.float()
    lse = torch.logsumexp(logits.masked_fill(~denominator, float("-inf")), dim=1)
    per_anchor = -(weights * (logits - lse[:, None])).sum(dim=1) / weights.sum(dim=1)
    return per_anchor.mean()


def make_batch(n2, d, gen):
    n = n2 // 2
    centers = torch.rand(10, d, generator=gen) * 2 - 1
    base = centers[torch.arange(n) % 10] + 0.6 * (torch.rand(n, d, generator=gen) * 2 - 1)
    views = [base + 0.35 * (torch.rand(n, d, generator=gen) * 2 - 1) for _ in range(2)]
    return torch.cat(views)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512,1024,4096,8192")
    p.add_argument("--dims", default="128,256")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--theta", type=float, default=0.8)
    p.add_argument("--mode", choices=["attract", "eliminate"], default="attract")
    p.add_argument("--weight", type=float, default=1.0)
    p.add_argument("--cap", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(12345)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.mode}, "
          f"tau {a.tau}, theta {a.theta}, {a.warmup} warm-up + {a.reps} timed calls each")
    print(f"{'2N':>6} {'d':>5}  {'median ms':>10} {'min ms':>10} {'GFLOP/s':>8}")
    for n2 in (int(v) for v in a.sizes.split(",")):
        for d in (int(v) for v in a.dims.split(",")):
            h = make_batch(n2, d, gen).requires_grad_()
            ms = []
            for r in range(a.warmup + a.reps):
                t0 = time.perf_counter()
                h.grad = None
                contrastive_loss(h, a.tau, a.theta, a.mode, a.weight, a.cap).backward()
                if r >= a.warmup:
                    ms.append(1e3 * (time.perf_counter() - t0))
            med = statistics.median(ms)
            gflop = 4.0 * n2 * n2 * d * 1e-9
            print(f"{n2:6d} {d:5d}  {med:10.3f} {min(ms):10.3f} {gflop / (med * 1e-3):8.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
