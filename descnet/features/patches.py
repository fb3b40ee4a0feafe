"""Patches: ``(H, W)`` grey image + kornia LAFs -> ``(N, 1, P, P)`` anti-aliased patches."""
from __future__ import annotations

import numpy as np
import torch
from kornia import feature as KF

__all__ = ["extract_patches"]


def extract_patches(gray: np.ndarray | torch.Tensor, lafs: torch.Tensor, patch_size: int = 32) -> torch.Tensor:
    """Cut anti-aliased patches: ``(H, W)`` grey image, ``(1, N, 2, 3)`` LAFs -> ``(N, 1, P, P)`` float32.

    Uses :func:`kornia.feature.extract_patches_from_pyramid`; cells outside the image repeat the border.
    """
    img = torch.as_tensor(gray, dtype=torch.float32)
    if img.ndim != 2:
        raise ValueError(f"extract_patches expects an (H, W) grey image, got shape {tuple(img.shape)}")
    lafs = lafs.reshape(1, -1, 2, 3).float()
    with torch.inference_mode():
        patches = KF.extract_patches_from_pyramid(img[None, None], lafs, PS=patch_size)
    return patches[0]
