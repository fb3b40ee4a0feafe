"""Hand-crafted baselines, registered like the learned models so every command takes them as a SPEC.

* ``pixels``: the 32x32 patch standardised by its own mean and std, flattened, unit-L2: ``(B, 1, 32, 32)
  -> (B, 1024)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .l2net import check_patches, standardize_patches
from .registry import register_model


class Pixels(nn.Module):
    """Raw-pixel baseline: ``(B, 1, 32, 32) -> (B, 1024)`` standardised, unit-L2 pixel vectors."""

    patch_size = 32
    descriptor_dim = 32 * 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "pixels")
        return F.normalize(standardize_patches(x).flatten(1), dim=1, eps=1e-10)


register_model("pixels", "mean/std normalised 32x32 patch (1024-D baseline)", trainable=False)(Pixels)
