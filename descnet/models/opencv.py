"""OpenCV's own SIFT descriptor as registry models: ``opencv-sift`` and ``opencv-rootsift``.

These are what users compare against: ``cv2.SIFT.compute`` on the given keypoints of the whole grey image
(RootSIFT = square root of the L1-normalised SIFT vector, Arandjelovic & Zisserman 2012). They are image
models (:class:`descnet.models.contract.ImageDescriptor`): they take no patches. The registry's ``sift`` /
``rootsift`` (:mod:`descnet.models.handcrafted`) are the patch-based versions, for HPatches patches.

>>> model = create_model("opencv-rootsift")
>>> model.describe_image(gray, keypoints)          # (H, W) in [0, 1], (N, 4) x y size angle -> (N, 128)
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..data.images import to_gray, to_uint8
from .contract import ImageDescriptor
from .registry import register_model

__all__ = ["OpenCVSIFT", "keypoints_to_opencv"]


def keypoints_to_opencv(keypoints: np.ndarray, image_size: tuple[int, int] | None = None) -> list[cv2.KeyPoint]:
    """``(N, 4)`` ``x, y, size, angle`` -> ``cv2.KeyPoint`` list, with SIFT's packed ``octave`` field.

    OpenCV's SIFT descriptor reads the pyramid octave and layer from ``KeyPoint.octave``; they are
    recovered from ``size`` exactly as SIFT sets them (``size = 3.2 * 2 ** (octave + (layer + xi) / 3)``),
    clamped to octaves -1 .. log2(min(H, W)) - 3 when ``image_size`` ``(H, W)`` is given.
    """
    top = int(math.log2(max(min(image_size), 16))) - 3 if image_size else 64
    out = []
    for x, y, size, angle in np.asarray(keypoints, np.float64).reshape(-1, 4):
        t = 3.0 * math.log2(max(size, 1e-6) / 3.2)
        n = int(round(t))
        octave = (n - 1) // 3
        layer, xi = n - 3 * octave, t - n
        if octave < -1:
            octave, layer, xi = -1, 1, 0.0
        elif octave > top:
            octave, layer, xi = top, 3, 0.0
        packed = (octave & 255) | (layer << 8) | (int(round((xi + 0.5) * 255)) << 16)
        out.append(cv2.KeyPoint(float(x), float(y), float(size), float(angle), 0.0, packed))
    return out


class OpenCVSIFT(ImageDescriptor):
    """OpenCV's SIFT descriptor on the whole image: ``(H, W)`` image, ``(N, 4)`` keypoints -> ``(N, 128)`` unit-L2.

    ``root=True`` gives RootSIFT: L1-normalise, square root, unit L2. The keypoints keep their order (see
    :func:`keypoints_to_opencv` for the octave OpenCV needs).
    """

    descriptor_dim = 128

    def __init__(self, root: bool = False) -> None:
        super().__init__()
        self.root = bool(root)

    def describe_image(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        gray = to_gray(image)
        if len(keypoints) == 0:
            return np.zeros((0, 128), np.float32)
        # SIFT builds its pyramid from the lowest octave among the keypoints; a first keypoint at octave -1
        # makes it start, as detection does, from the 2x upsampled image (its descriptor is dropped)
        cv_kps = keypoints_to_opencv(np.vstack([[0.0, 0.0, 2.0, 0.0], keypoints]), gray.shape)
        out_kps, desc = cv2.SIFT_create().compute(to_uint8(gray), cv_kps)
        if desc is None or len(out_kps) != len(cv_kps):
            raise RuntimeError(f"OpenCV SIFT described {0 if desc is None else len(desc)} of {len(cv_kps)} "
                               f"keypoints")
        desc = desc[1:].astype(np.float32)
        if self.root:
            desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-12))
        return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)


register_model("opencv-sift", "OpenCV's SIFT descriptor on the whole image at each keypoint (128-D baseline)",
               trainable=False)(OpenCVSIFT)
register_model("opencv-rootsift", "RootSIFT of OpenCV's SIFT on the whole image at each keypoint (128-D baseline)",
               trainable=False, root=True)(OpenCVSIFT)
