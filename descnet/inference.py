"""The inference path: many patches -> descriptors, batched, in eval mode under ``torch.inference_mode``.

Every command that describes patches (``describe``, ``match``, ``eval``, the benchmarks) goes through
:func:`describe_patches`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["as_patch_tensor", "describe_patches"]


def as_patch_tensor(patches: Any, patch_size: int) -> torch.Tensor:
    """uint8 or float patches ``(N, H, W)`` / ``(N, 1, H, W)`` -> float ``(N, 1, P, P)`` in [0, 1].

    uint8 input is divided by 255; float input is taken as already in [0, 1]. Patches of another size
    are resized with anti-aliased bilinear interpolation (e.g. HPatches' 65x65 -> 32x32).
    """
    x = torch.from_numpy(np.ascontiguousarray(patches)) if isinstance(patches, np.ndarray) else patches
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"patches must be a numpy array or torch tensor, got {type(patches).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
        raise ValueError(f"patches must be (N, H, W) or (N, 1, H, W) with H == W, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif x.is_floating_point():
        x = x.float()
    else:
        raise TypeError(f"patches must be uint8 or floating point, got {x.dtype}")
    if x.shape[-1] != patch_size:
        x = F.interpolate(x, size=(patch_size, patch_size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.inference_mode()
def describe_patches(model: nn.Module, patches: Any, batch_size: int = 1024, device: str | torch.device = "cpu",
                     progress: bool = False) -> torch.Tensor:
    """Describe ``(N, H, W)`` patches with ``model``: returns float32 ``(N, D)`` descriptors on the CPU."""
    model = model.eval().to(device)
    patch_size = int(getattr(model, "patch_size", 32))
    n = len(patches)
    out: list[torch.Tensor] = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="describe", unit="batch", leave=False)
    for start in starts:
        batch = as_patch_tensor(patches[start:start + batch_size], patch_size).to(device)
        out.append(model(batch).float().cpu())
    if not out:
        dim = int(getattr(model, "descriptor_dim", 128))
        return torch.empty(0, dim)
    return torch.cat(out)
