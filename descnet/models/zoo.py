"""The learned models of the registry: descnet's own networks and kornia's published architectures.

kornia's classes are built with ``pretrained=False`` (no download); load published weight files with
:func:`descnet.models.load_weights` or a ``name:path`` model SPEC.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia import feature as KF
from torch import nn

from .l2net import L2Net, check_patches
from .registry import register_model

# ---------------------------------------------------------------- descnet networks


@register_model("hardnet", "L2-Net/HardNet body (Mishchuk et al. 2017), 32x32 -> 128-D")
def hardnet(**options) -> L2Net:
    return L2Net(attention=None, **options)


@register_model("hardnet-csa", "HardNet + grouped compressed self-attention after the 32x32 stage",
                placement=(32,), num_bases=32, groups=2, temperature=14.0)
def hardnet_csa(**options) -> L2Net:
    return L2Net(attention="csa", **options)


@register_model("hardnet-sa", "HardNet + full non-local self-attention (the CSA reference)", placement=(32,))
def hardnet_sa(**options) -> L2Net:
    return L2Net(attention="nonlocal", **options)


# ---------------------------------------------------------------- kornia's published architectures


class TFeat(KF.TFeat):
    """kornia's TFeat architecture with L2-normalised output: ``(B, 1, 32, 32) -> (B, 128)``.

    Keys ``features.1``, ``features.4``, ``descr.0`` as in the published ``tfeat-*.params`` files.
    """

    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__(pretrained=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "TFeat")
        return F.normalize(super().forward(x), dim=1, eps=1e-10)


class SOSNet(KF.SOSNet):
    """kornia's SOSNet architecture: ``(B, 1, 32, 32) -> (B, 128)``."""

    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__(pretrained=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "SOSNet")
        return super().forward(x)


class HyNet(KF.HyNet):
    """kornia's HyNet architecture: ``(B, 1, 32, 32) -> (B, 128)``."""

    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__(pretrained=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "HyNet")
        return super().forward(x)


class HardNet8(KF.HardNet8):
    """kornia's HardNet8 architecture (with its PCA to 128-D): ``(B, 1, 32, 32) -> (B, 128)``."""

    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__(pretrained=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "HardNet8")
        return super().forward(x)


class HardTFeat(nn.Module):
    """TFeat trained with the HardNet loss, as published with AffNet (Mishkin et al. 2018):
    ``(B, 1, 32, 32) -> (B, 128)``.

    Per-patch standardisation (mean, std with Bessel's correction + 1e-7), conv 7x7 -> tanh -> max-pool 2 ->
    conv 6x6 -> tanh, then a *convolutional* 8x8 head to 128 -> tanh -> L2. Keys ``features.0``,
    ``features.3``, ``classifier.1`` as in ``HardTFeat.pth`` (its ``SIFT.*`` tensors belong to a helper
    the descriptor does not use).
    """

    patch_size = 32
    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, kernel_size=7), nn.Tanh(), nn.MaxPool2d(2, 2),
                                      nn.Conv2d(32, 64, kernel_size=6), nn.Tanh())
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(64, 128, kernel_size=8), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patches(x, self.patch_size, "HardTFeat")
        flat = x.flatten(1)
        x = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-7)
        return F.normalize(self.classifier(self.features(x)).flatten(1), dim=1, eps=1e-10)


class KorniaHardNet(KF.HardNet):
    """kornia's own HardNet class (for parity checks): ``(B, 1, 32, 32) -> (B, 128)``."""

    descriptor_dim = 128

    def __init__(self) -> None:
        super().__init__(pretrained=False)


register_model("tfeat", "TFeat (Balntas et al. 2016), kornia architecture; tfeat:PATH loads weights")(TFeat)
register_model("sosnet", "SOSNet (Tian et al. 2019), kornia architecture; sosnet:PATH loads weights")(SOSNet)
register_model("hynet", "HyNet (Tian et al. 2020), kornia architecture; hynet:PATH loads weights")(HyNet)
register_model("hardnet8", "HardNet8 (Pultar 2020), kornia architecture; weights: the hardnet8 name")(HardNet8)
register_model("hardtfeat", "TFeat architecture with a conv head, trained with the HardNet loss (AffNet's)")(HardTFeat)
register_model("kornia-hardnet", "kornia.feature.HardNet itself (same keys as hardnet)")(KorniaHardNet)
