#!/usr/bin/python3
"""Times the SimCLR training step of bench/bench_step in PyTorch on the CPU, for a side-by-side
ratio: ResNet-18 (torchvision's layout, written out here since Debian's python3-torch comes
without torchvision), CIFAR stem (3x3 conv, no max pool) at inputs of 64 pixels or less,
projection head F -> F -> BN -> ReLU -> 128, NT-Xent at tau 0.2 on 2B views, SGD with
momentum 0.9. The views are random tensors already of the output size: the augmentation,
which bench_step times as its own phase, is not part of this step. Reports median and min
per phase (forward with the loss, backward, optimizer) and images/s at the median step.

    /usr/bin/python3 bench/torch_step.py [--input 32x32x3] [--batch 128] [--width 1]
                                         [--reps 3] [--warmup 1] [--threads 2]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def channels(base, width):
    return max(1, int(base * width + 0.5))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self, in_channels, width, cifar_stem, head_out=128):
        super().__init__()
        c = [channels(b, width) for b in (64, 128, 256, 512)]
        if cifar_stem:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(c[0]), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(c[0]), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], c[0]
        for i, cout in enumerate(c):
            stride = 1 if i == 0 else 2
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cin, cin), nn.BatchNorm1d(cin), nn.ReLU(),
                                  nn.Linear(cin, head_out))

    def forward(self, x):
        f = self.layers(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))


def nt_xent(h, tau):
    n2 = h.shape[0]
    z = F.normalize(h, dim=1)
    s = z @ z.T / tau
    s = s.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(s, target)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default="32x32x3")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    h, w, c = (int(v) for v in a.input.split("x"))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    model = ResNet18(c, a.width, h <= 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-6)
    views = torch.randn(2 * a.batch, c, h, w)
    times = {"forward+loss": [], "backward": [], "optimizer": [], "step": []}
    for r in range(a.warmup + a.reps):
        t0 = time.perf_counter()
        loss = nt_xent(model(views), 0.2)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if not torch.isfinite(loss):
            raise SystemExit("torch_step: the loss is not finite")
        if r >= a.warmup:
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[k].append(v * 1e3)

    print(f"PyTorch {torch.__version__}, {a.threads} threads; resnet18 width {a.width:g}, "
          f"batch {a.batch} (2N {2 * a.batch}) of {h}x{w}x{c}; {a.reps} steps after "
          f"{a.warmup} warm-up")
    print(f"{'phase':<13} {'median ms':>12} {'min ms':>12}")
    for k, v in times.items():
        print(f"{k:<13} {statistics.median(v):12.1f} {min(v):12.1f}")
    step = statistics.median(times["step"])
    print(f"images/s at the median step: {a.batch / step * 1e3:.1f}")


if __name__ == "__main__":
    main()
