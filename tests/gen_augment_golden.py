#!/usr/bin/env python3
"""Writes tests/data/augment_bilinear.bin: crops of a small uint8 image resized by PyTorch's
bilinear interpolation (align_corners=False, no antialiasing), the convention of
cl/augment.cl. Run from the repository root with a python3 that has torch:

    python3 tests/gen_augment_golden.py

Format (little-endian): magic b"CLAUGB01", int32 channels, height, width, cases; the image
as channels*height*width uint8; then per case int32 top, left, h, w, oh, ow followed by
channels*oh*ow float64 values on the 0..255 scale."""
import struct

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
gen = torch.Generator().manual_seed(5)
C, H, W = 3, 15, 19
image = torch.randint(0, 256, (C, H, W), generator=gen, dtype=torch.uint8)

# (top, left, h, w, oh, ow): upsampling, downsampling, mixed, 1-pixel crops, the whole image
cases = [(2, 3, 7, 9, 16, 20), (0, 0, 15, 19, 6, 5), (4, 1, 10, 5, 13, 3),
         (5, 7, 1, 1, 4, 4), (1, 2, 13, 16, 13, 16), (0, 0, 15, 19, 32, 29),
         (3, 0, 12, 2, 7, 11)]

with open("tests/data/augment_bilinear.bin", "wb") as f:
    f.write(b"CLAUGB01")
    f.write(struct.pack("<4i", C, H, W, len(cases)))
    f.write(image.numpy().tobytes())
    for top, left, h, w, oh, ow in cases:
        crop = image[:, top:top + h, left:left + w].to(torch.float64)[None]
        out = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=False)[0]
        f.write(struct.pack("<6i", top, left, h, w, oh, ow))
        f.write(out.contiguous().numpy().astype("<f8").tobytes())
