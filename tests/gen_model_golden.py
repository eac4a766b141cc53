#!/usr/bin/env python3
"""Golden values for the model tests, from PyTorch (Debian's python3-torch, 1.13).

    python3 tests/gen_model_golden.py            # writes tests/data/*.safetensors
    python3 tests/gen_model_golden.py --check-clcl DIR

The first form builds ResNets with torchvision's module names and structure (torchvision
itself is not packaged for Debian's torch, so the classes below mirror it), runs a
training-mode forward and backward in float64 and writes weights, inputs, outputs, every
parameter gradient and the updated running statistics, plus a few SGD steps of a loss
trajectory. It also writes model_init.safetensors: the first values of clcl's seeded
generator and of clcl's initial weights, computed here by an independent Python version of
xoshiro256** / splitmix64.

The second form checks a backbone that clcl saved (test_model writes DIR/backbone.safetensors
and DIR/features.safetensors when CLCL_EXPORT_DIR=DIR is set): it loads into a
torchvision-shaped resnet18 with strict=False missing exactly fc.weight and fc.bias, and the
network then gives clcl's features.

Every file is safetensors with "__metadata__" {"format": "clcl-golden", "version": "1"}, so
the tests can refuse a stale or foreign file.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(2)

FORMAT_VERSION = "1"
MASK = (1 << 64) - 1

# ---- safetensors, written and read here without the safetensors package -------------------


def save_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array of float32 or int64)."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, a in tensors:
        a = np.array(a, order="C")  # (ascontiguousarray would make a scalar 1-d)
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    base = 8 + n
    for name, e in header.items():
        dtype = {"F32": np.float32, "I64": np.int64}[e["dtype"]]
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + end], dtype=dtype).reshape(e["shape"])
    return out, meta


# ---- clcl's generator, re-implemented ---------------------------------------------------


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return x, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Rng:
    def __init__(self, seed, stream=None):
        if stream is not None:
            mixed, a = splitmix64(seed)
            _, b = splitmix64(stream ^ a)
            seed = b ^ rotl(a, 17)
        self.s = []
        x = seed
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    def u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.u64() >> 11) * 2.0 ** -53

    def range(self, lo, hi):
        return lo + (hi - lo) * self.uniform()

    def below(self, n):
        limit = MASK - MASK % n
        while True:
            x = self.u64()
            if x < limit:
                return x % n

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)

    def shuffle(self, idx):
        for i in range(len(idx) - 1, 0, -1):
            j = self.below(i + 1)
            idx[i], idx[j] = idx[j], idx[i]


def as_i64(values):
    return np.array([v - (1 << 64) if v >= (1 << 63) else v for v in values], dtype=np.int64)


def double_bits(values):
    return np.array([struct.unpack("<q", struct.pack("<d", v))[0] for v in values],
                    dtype=np.int64)


# ---- the networks, with torchvision's names -----------------------------------------------


def channels(base, width):
    """clcl's rounding: round half up, at least 1."""
    return max(1, int(math.floor(base * width + 0.5)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return self.relu(out + short)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        short = x if self.downsample is None else self.downsample(x)
        return self.relu(out + short)


class ResNet(nn.Module):
    """torchvision.models.ResNet's layout; `stem` "cifar" swaps in a 3x3 stride-1 conv1 and
    drops the max pool (the usual CIFAR variant), keeping every name."""

    def __init__(self, arch, stem="imagenet", in_channels=3, width=1.0, num_classes=None):
        super().__init__()
        block, counts = {"resnet18": (BasicBlock, [2, 2, 2, 2]),
                         "resnet50": (Bottleneck, [3, 4, 6, 3])}[arch]
        c0 = channels(64, width)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, c0, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, c0, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU()
        inplanes = c0
        for i, n in enumerate(counts):
            planes = channels(64 << i, width)
            blocks = []
            for b in range(n):
                blocks.append(block(inplanes, planes, 2 if (b == 0 and i > 0) else 1))
                inplanes = planes * block.expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.features = inplanes
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def backbone(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(x.mean(dim=(2, 3)), 1)

    def forward(self, x):
        f = self.backbone(x)
        return f if self.fc is None else self.fc(f)


class Model(nn.Module):
    """Backbone + clcl's projection head: head.0 linear (bias), head.1 batchnorm1d,
    head.2 ReLU, head.3 linear (bias unless last_bias is False)."""

    def __init__(self, arch, stem, in_channels, width, hidden=0, out=128, last_bias=True):
        super().__init__()
        self.backbone = ResNet(arch, stem, in_channels, width)
        f = self.backbone.features
        hidden = hidden or f
        self.head = nn.Sequential(nn.Linear(f, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, out, bias=last_bias))

    def forward(self, x):
        f = self.backbone.backbone(x)
        return f, self.head(f)

    def state(self):
        """(name, tensor) in clcl's order: the backbone's state_dict, then head.*."""
        items = [(k, v) for k, v in self.backbone.state_dict().items()]
        items += [("head." + k, v) for k, v in self.head.state_dict().items()]
        return items

    def named_params(self):
        items = [(k, p) for k, p in self.backbone.named_parameters()]
        items += [("head." + k, p) for k, p in self.head.named_parameters()]
        return items


def to_np(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return t.numpy().astype(np.int64)
    return t.float().numpy().astype(np.float32)


# ---- golden cases ----------------------------------------------------------------------


def metadata(case):
    m = {"format": "clcl-golden", "version": FORMAT_VERSION}
    for k, v in case.items():
        m[k] = str(v)
    return m


def golden_case(path, case, seed):
    """Forward (train) and backward in float64; then an eval forward; optionally SGD steps."""
    torch.manual_seed(seed)
    model = Model(case["arch"], case["stem"], case["in_channels"], case["width"],
                  case["head_hidden"], case["head_out"], case["head_last_bias"] == 1)
    tensors = [(k, to_np(v)) for k, v in model.state()]  # float32 initial weights
    n, c, h, w = case["batch"], case["in_channels"], case["height"], case["width_px"]
    x = torch.randn(n, c, h, w)
    tensors.append(("input", to_np(x)))

    model = model.double()
    model.train()
    feats, proj = model(x.double())
    loss = torch.zeros((), dtype=torch.float64)
    if case["dproj"]:
        dproj = torch.randn(proj.shape).double()
        loss = loss + (proj * dproj).sum()
        tensors.append(("dproj", to_np(dproj)))
    if case["dfeat"]:
        dfeat = torch.randn(feats.shape).double()
        loss = loss + (feats * dfeat).sum()
        tensors.append(("dfeat", to_np(dfeat)))
    loss.backward()
    tensors.append(("out.features", to_np(feats)))
    tensors.append(("out.projection", to_np(proj)))
    for name, p in model.named_params():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        tensors.append(("grad." + name, to_np(g)))
    for name, v in model.state():
        if "running" in name or "num_batches" in name:
            tensors.append(("after." + name, to_np(v)))

    model.eval()
    with torch.no_grad():
        ef, ep = model(x.double())
    tensors.append(("eval.features", to_np(ef)))
    tensors.append(("eval.projection", to_np(ep)))

    if case.get("traj_steps"):
        tensors += trajectory(case, tensors, x)
    dev = float32_deviation(case, dict(tensors), x)
    case = dict(case, torch_f32_output_dev="%.2e" % dev[0], torch_f32_grad_dev="%.2e" % dev[1])
    save_safetensors(path, tensors, metadata(case))
    print("wrote %s (%.1f MB)" % (path, os.path.getsize(path) / 1e6))


def float32_deviation(case, golden, x):
    """How far PyTorch's own float32 run strays from the float64 golden: the largest
    |difference| / max |golden| over the outputs, and over the gradients (head.0.bias,
    zero in exact arithmetic, left out). Recorded to show the tolerances are not tight by
    luck."""
    model = Model(case["arch"], case["stem"], case["in_channels"], case["width"],
                  case["head_hidden"], case["head_out"], case["head_last_bias"] == 1)
    load_into(model, golden)
    model.train()
    f, p = model(x)
    loss = torch.zeros(())
    if case["dproj"]:
        loss = loss + (p * torch.from_numpy(golden["dproj"])).sum()
    if case["dfeat"]:
        loss = loss + (f * torch.from_numpy(golden["dfeat"])).sum()
    loss.backward()

    def dev(a, ref):
        return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))

    out = max(dev(to_np(f), golden["out.features"]), dev(to_np(p), golden["out.projection"]))
    grad = 0.0
    for name, prm in model.named_params():
        if name != "head.0.bias" and prm.grad is not None:
            grad = max(grad, dev(to_np(prm.grad), golden["grad." + name]))
    print("  PyTorch float32 vs float64: outputs %.1e, gradients %.1e" % (out, grad))
    return out, grad


def load_into(model, golden):
    sd = {k: torch.from_numpy(golden[k].copy()) for k, _ in model.state()}
    model.backbone.load_state_dict({k: v for k, v in sd.items() if not k.startswith("head.")})
    model.head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})


def trajectory(case, tensors, x):
    """Mean squared error of the projections to a fixed target, SGD (torch.optim.SGD with
    momentum, Nesterov and weight decay on every parameter), in float64."""
    model = Model(case["arch"], case["stem"], case["in_channels"], case["width"],
                  case["head_hidden"], case["head_out"], case["head_last_bias"] == 1)
    load_into(model, dict(tensors))
    model = model.double().train()
    target = torch.randn(case["batch"], case["head_out"]).double()
    opt = torch.optim.SGD(model.parameters(), lr=case["traj_lr"], momentum=0.9, nesterov=True,
                          weight_decay=case["traj_wd"])
    losses = []
    for _ in range(case["traj_steps"]):
        opt.zero_grad()
        _, p = model(x.double())
        loss = ((p - target) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        opt.step()
    print("  trajectory:", " ".join("%.6f" % v for v in losses))
    return [("traj.target", to_np(target)),
            ("traj.loss", np.array(losses, dtype=np.float32))]


def init_reference(path):
    """The first values of clcl's generator and of clcl's initial weights."""
    tensors = []
    r = Rng(42)
    tensors.append(("rng.seed42.u64", as_i64([r.u64() for _ in range(8)])))
    r = Rng(42, stream=7)
    tensors.append(("rng.seed42.stream7.u64", as_i64([r.u64() for _ in range(4)])))
    r = Rng(1)
    tensors.append(("rng.seed1.uniform_bits", double_bits([r.uniform() for _ in range(4)])))
    tensors.append(("rng.seed1.then_normal_bits", double_bits([r.normal() for _ in range(4)])))
    r = Rng(3)
    tensors.append(("rng.seed3.below10", np.array([r.below(10) for _ in range(16)], np.int64)))
    r = Rng(5)
    idx = list(range(10))
    r.shuffle(idx)
    tensors.append(("rng.seed5.shuffle10", np.array(idx, np.int64)))

    # clcl draws every parameter in order from one generator seeded with the model seed:
    # conv weights N(0, 2 / fan_out), linear weights and biases U(-1/sqrt(fan_in), +).
    case = {"arch": "resnet18", "stem": "cifar", "in_channels": 3, "width": 0.125,
            "head_hidden": 0, "head_out": 128, "head_last_bias": 1, "seed": 1234}
    model = Model(case["arch"], case["stem"], 3, 0.125)
    r = Rng(case["seed"])
    firsts = {}
    for name, p in model.named_params():
        shape = list(p.shape)
        count = int(np.prod(shape))
        if name.endswith("weight") and len(shape) == 4:
            std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
            vals = [r.normal() * std for _ in range(count)]
        elif name.startswith("head.") and name[5] in "03":
            fan_in = model.head[int(name[5])].in_features
            bound = 1.0 / math.sqrt(fan_in)
            vals = [r.range(-bound, bound) for _ in range(count)]
        else:
            continue  # batchnorm: gamma 1, beta 0, no draws
        firsts[name] = vals[:16]
    for name in ["conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight",
                 "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"]:
        tensors.append(("init." + name, np.array(firsts[name], dtype=np.float32)))
    save_safetensors(path, tensors, metadata(case))
    print("wrote %s" % path)


CASES = [
    # The whole ResNet-18 with the CIFAR stem on a batch of 2. Width 0.5, because full width
    # would be 90 MB of weights and gradients. The gradient enters at the features: with 2
    # samples the head's batchnorm1d output is +-1 whatever its input, so nothing would
    # flow back through it.
    ("resnet18_cifar_w0.5_b2.safetensors",
     {"arch": "resnet18", "stem": "cifar", "in_channels": 3, "width": 0.5, "head_hidden": 0,
      "head_out": 128, "head_last_bias": 1, "batch": 2, "height": 32, "width_px": 32,
      "dproj": 0, "dfeat": 1}, 1),
    # ResNet-18, ImageNet stem, odd image size, batch 3, gradient from both ends.
    ("resnet18_imagenet_w0.25_b3.safetensors",
     {"arch": "resnet18", "stem": "imagenet", "in_channels": 3, "width": 0.25,
      "head_hidden": 0, "head_out": 128, "head_last_bias": 1, "batch": 3, "height": 37,
      "width_px": 37, "dproj": 1, "dfeat": 1}, 2),
    # ResNet-50 (bottlenecks), one input channel, head without the last bias. The CIFAR
    # stem keeps layer4 at 4x4: with the ImageNet stem at this size PyTorch's own float32
    # gradients stray 1e-3 from float64 (small batchnorm groups, max-pool near-ties).
    ("resnet50_cifar_w0.125_b4.safetensors",
     {"arch": "resnet50", "stem": "cifar", "in_channels": 1, "width": 0.125,
      "head_hidden": 48, "head_out": 32, "head_last_bias": 0, "batch": 4, "height": 32,
      "width_px": 32, "dproj": 1, "dfeat": 0}, 3),
    # A short SGD loss trajectory on Fashion-MNIST-sized input; at this learning rate
    # PyTorch's float32 and float64 trajectories agree to 1e-7.
    ("resnet18_cifar_w0.125_b8_sgd.safetensors",
     {"arch": "resnet18", "stem": "cifar", "in_channels": 1, "width": 0.125, "head_hidden": 0,
      "head_out": 32, "head_last_bias": 1, "batch": 8, "height": 28, "width_px": 28,
      "dproj": 1, "dfeat": 0, "traj_steps": 6, "traj_lr": 0.01, "traj_wd": 5e-4}, 4),
]


def check_clcl(directory):
    """A clcl backbone into a torchvision-shaped resnet18 (with fc), strict=False."""
    weights, meta = load_safetensors(os.path.join(directory, "backbone.safetensors"))
    data, _ = load_safetensors(os.path.join(directory, "features.safetensors"))
    net = ResNet("resnet18", meta.get("clcl.stem", "imagenet"),
                 int(meta.get("clcl.in_channels", "3")), float(meta.get("clcl.width", "1")),
                 num_classes=1000)
    sd = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    result = net.load_state_dict(sd, strict=False)
    missing, unexpected = sorted(result.missing_keys), sorted(result.unexpected_keys)
    print("missing:", missing, "unexpected:", unexpected)
    ok = missing == ["fc.bias", "fc.weight"] and unexpected == []
    net.eval()
    with torch.no_grad():
        f = net.backbone(torch.from_numpy(data["input"].copy())).numpy()
    ref = data["features"]
    err = np.max(np.abs(f - ref) / (1e-4 + np.abs(ref)))
    print("features: max relative difference %.2e over %d values" % (err, ref.size))
    ok = ok and err < 1e-3
    print("check-clcl:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--check-clcl", metavar="DIR")
    args = ap.parse_args()
    if args.check_clcl:
        sys.exit(check_clcl(args.check_clcl))
    os.makedirs(args.out, exist_ok=True)
    init_reference(os.path.join(args.out, "model_init.safetensors"))
    for name, case, seed in CASES:
        golden_case(os.path.join(args.out, name), case, seed)


if __name__ == "__main__":
    main()
