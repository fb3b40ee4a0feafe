"""Hand-crafted baselines, registered like the learned models so every command takes them as a SPEC.

* ``pixels``: the 32x32 patch standardised by its own mean and std, flattened, unit-L2: ``(B, 1, 32, 32)
  -> (B, 1024)``.
* ``sift``, ``rootsift``: OpenCV SIFT on the centre of the whole 65x65 HPatches patch (``patch_size = 65``,
  so ``describe_patches`` feeds them the full patch): ``(B, 1, 65, 65) -> (B, 128)``.
"""
from __future__ import annotations

import math

import numpy as np
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


# ------------------------------------------------------------------------------------------------- SIFT
# OpenCV's SIFT descriptor is a 4x4 grid of histogram bins, each SIFT_DESCR_SCL_FCTR * sigma = 3 * (size / 2)
# pixels wide (sigma = half the keypoint size), so the grid spans 4 * 1.5 * size = 6 * size pixels. HPatches
# patches span 5x the detected feature scale, and the HPatches baselines describe the whole patch: their
# MATLAB code calls vl_siftdescriptor at scale P / 2 with magnif 0.5, a grid of 4 * 0.5 * P / 2 = P pixels.
# Hence size = P / 6 (10.83 px for the 65-px patch). (hpatches-benchmark's extract_opencv_sift.py uses
# size = P / 5.303, which makes OpenCV's *sampling radius* 5.303 * size equal to P, a grid 13% larger than
# the patch whose outer bins then see no pixels.)
SIFT_SIZE_PER_PATCH = 1.0 / 6.0
_SIFT_BLUR_RADIUS = 6  # OpenCV blurs the input to sigma 1.6 (from an assumed 0.5): a 13-tap kernel


def _sift_padding(patch_size: int, size: float) -> int:
    """Edge padding around each tile so that neither the descriptor window nor the blur sees another tile.

    With angle 0 a pixel contributes when its bin coordinate lies in (-1, 4), i.e. closer than 2.5 bins
    (3.75 * size) to the centre; its gradient reads one more pixel, its blurred value 6 more.
    """
    reach = math.ceil(2.5 * 1.5 * size) + 1 + _SIFT_BLUR_RADIUS
    return max(0, reach - patch_size // 2) + 1


def sift_descriptors(patches: np.ndarray, size: float | None = None, chunk: int = 256) -> np.ndarray:
    """OpenCV SIFT at the centre of each patch, orientation 0: uint8 ``(B, P, P) -> float32 (B, 128)``.

    Vectorised: the patches, each edge-padded (see :func:`_sift_padding`), are tiled into one mosaic and
    ``cv2.SIFT.compute`` runs once per ``chunk`` patches with keypoints at the tile centres. The result is
    the descriptor OpenCV computes for one edge-padded patch alone (OpenCV's normalisation: unit L2, clipped
    at 0.2, scaled by 512, rounded).
    """
    import cv2

    patches = np.asarray(patches)
    if patches.dtype != np.uint8 or patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"sift_descriptors expects uint8 (B, P, P) patches, got {patches.dtype} {patches.shape}")
    b, p = len(patches), patches.shape[1]
    size = p * SIFT_SIZE_PER_PATCH if size is None else float(size)
    pad = _sift_padding(p, size)
    tile = p + 2 * pad
    centre = pad + p // 2  # integer pixel: OpenCV rounds the keypoint position anyway
    sift = cv2.SIFT_create()  # default sigma 1.6: OpenCV smooths the 8-bit patch as for detection
    out = np.empty((b, 128), np.float32)
    for start in range(0, b, chunk):
        block = patches[start:start + chunk]
        n = len(block)
        cols = min(n, 16)
        rows = -(-n // cols)
        tiles = np.zeros((rows * cols, tile, tile), np.uint8)
        tiles[:n] = np.pad(block, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
        mosaic = np.ascontiguousarray(tiles.reshape(rows, cols, tile, tile).transpose(0, 2, 1, 3)
                                      .reshape(rows * tile, cols * tile))
        keypoints = [cv2.KeyPoint(float((i % cols) * tile + centre), float((i // cols) * tile + centre), size, 0.0)
                     for i in range(n)]
        found, desc = sift.compute(mosaic, keypoints)
        if desc is None or len(found) != n:
            raise RuntimeError(f"OpenCV SIFT returned {0 if desc is None else len(found)} descriptors for {n} "
                               f"keypoints")
        out[start:start + n] = desc
    return out


class SIFT(nn.Module):
    """OpenCV SIFT on the whole 65x65 HPatches patch: ``(B, 1, 65, 65) -> (B, 128)`` unit-L2.

    ``root=True`` gives RootSIFT (Arandjelovic and Zisserman 2012): L1-normalise, square root, unit L2.
    Patches are turned back into 8-bit images (``round(255 x)``) for OpenCV, so uint8 input is exact.
    """

    patch_size = 65
    descriptor_dim = 128

    def __init__(self, root: bool = False) -> None:
        super().__init__()
        self.root = bool(root)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "rootsift" if self.root else "sift")
        images = (x[:, 0].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        desc = torch.from_numpy(sift_descriptors(images)).to(x.device)
        if self.root:
            desc = (desc / desc.sum(dim=1, keepdim=True).clamp_min(1e-12)).sqrt()
        return F.normalize(desc, dim=1, eps=1e-10)


register_model("sift", "OpenCV SIFT at the centre of the 65x65 patch (128-D baseline)", trainable=False)(SIFT)
register_model("rootsift", "RootSIFT: L1-normalised, square-rooted OpenCV SIFT (128-D baseline)",
               trainable=False, root=True)(SIFT)
