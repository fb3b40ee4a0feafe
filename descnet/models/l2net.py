"""The L2-Net / HardNet patch network, optionally with self-attention at the shallow stages.

Body (bias-free convs, each followed by BatchNorm(affine=False) and ReLU)::

    conv3x3(32) conv3x3(32) | [attn @32x32] | conv3x3/2(64) conv3x3(64) | [attn @16x16] |
    conv3x3/2(128) conv3x3(128) dropout(0.3) | conv8x8(128) BN | L2-normalise

``features`` keeps exactly the layer indices of ``kornia.feature.HardNet`` (and of the HardNet reference
code), so their checkpoints load unchanged; attention blocks live outside it (``attn32``, ``attn16``),
so a HardNet checkpoint also initialises the body of an attention variant.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CompressedSelfAttention, NonLocalAttention

__all__ = ["L2Net", "check_patches", "standardize_patches"]

# features[:6] -> 32x32x32, features[6:12] -> 16x16x64, features[12:] -> 1x1x128
_STAGE_ENDS = {32: 6, 16: 12}
_STAGE_CHANNELS = {32: 32, 16: 64}


def check_patches(x: torch.Tensor, patch_size: int = 32, name: str = "model") -> None:
    """Raise a clear error unless ``x`` is a floating ``(B, 1, patch_size, patch_size)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of patches, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != patch_size or x.shape[3] != patch_size:
        raise ValueError(
            f"{name} expects grey patches of shape (B, 1, {patch_size}, {patch_size}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects floating point patches (e.g. pixels/255), got {x.dtype}")


def standardize_patches(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch standardisation of HardNet: ``(x - mean) / (std + eps)``, statistics detached.

    Shape: ``(B, 1, H, W) -> (B, 1, H, W)``. ``std`` is the unbiased estimate, as in HardNet and kornia.
    """
    std, mean = torch.std_mean(x, dim=(-3, -2, -1), keepdim=True)
    return (x - mean.detach()) / (std.detach() + eps)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout, affine=False), nn.ReLU()]


class L2Net(nn.Module):
    """HardNet descriptor network: ``(B, 1, 32, 32)`` float patches -> ``(B, 128)`` unit vectors.

    Args:
        attention: ``None``, ``"csa"`` (:class:`CompressedSelfAttention`) or ``"nonlocal"``
            (:class:`NonLocalAttention`).
        placement: stages that get an attention block, a subset of ``(32, 16)``.
        num_bases, groups, temperature: CSA options (ignored by ``"nonlocal"``).
        dropout: dropout rate before the last conv (HardNet: 0.3).
        init_gain: gain of the orthogonal init of the body convs (HardNet: 0.6).
    """

    patch_size = 32
    descriptor_dim = 128

    def __init__(self, attention: str | None = None, placement: Iterable[int] = (32,), num_bases: int = 32,
                 groups: int = 2, temperature: float = 14.0, dropout: float = 0.3, init_gain: float = 0.6) -> None:
        super().__init__()
        layers = (_conv_bn_relu(1, 32) + _conv_bn_relu(32, 32) + _conv_bn_relu(32, 64, 2) + _conv_bn_relu(64, 64)
                  + _conv_bn_relu(64, 128, 2) + _conv_bn_relu(128, 128)
                  + [nn.Dropout(dropout), nn.Conv2d(128, 128, kernel_size=8, bias=False),
                     nn.BatchNorm2d(128, affine=False)])
        self.features = nn.Sequential(*layers)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight, gain=init_gain)

        placement = tuple(sorted({int(p) for p in placement}, reverse=True)) if attention else ()
        unknown = set(placement) - set(_STAGE_ENDS)
        if unknown:
            raise ValueError(f"placement must be a subset of (32, 16), got {sorted(unknown)}")
        if attention not in (None, "csa", "nonlocal"):
            raise ValueError(f"attention must be None, 'csa' or 'nonlocal', got {attention!r}")
        self.attention, self.placement = attention, placement
        for stage in placement:
            c = _STAGE_CHANNELS[stage]
            block = (CompressedSelfAttention(c, num_bases=num_bases, groups=groups, temperature=temperature)
                     if attention == "csa" else NonLocalAttention(c))
            self.add_module(f"attn{stage}", block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, type(self).__name__)
        x = standardize_patches(x)
        start = 0
        for stage in sorted(self.placement, reverse=True):
            end = _STAGE_ENDS[stage]
            x = getattr(self, f"attn{stage}")(self.features[start:end](x))
            start = end
        x = self.features[start:](x)
        return F.normalize(x.flatten(1), p=2, dim=1, eps=1e-10)
