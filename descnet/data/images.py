"""Reading image files: the one place where descnet decodes images (numpy and OpenCV only)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_image"]


def read_image(path: str | os.PathLike, gray: bool | None = None) -> np.ndarray:
    """Read an image file -> ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 or uint16 (the file's depth is kept).

    ``gray=None`` keeps the file's channels, ``True`` converts to grey, ``False`` to RGB.

    Any format OpenCV reads (PNG, JPEG, PPM/PGM with ``#`` comment lines, TIFF, BMP ...). Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` for a folder or an empty, unreadable or
    truncated file (a JPEG without its end marker, which OpenCV would silently decode with a grey bottom).
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not an image file") from None
    if not data:
        raise ValueError(f"{path}: empty file, not an image")
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        raise ValueError(f"{path}: truncated JPEG (no end-of-image marker after the last scan)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a readable image (unknown format, truncated or corrupt)")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        if gray:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif gray is False:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return image


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG is complete when an end-of-image marker (FFD9) follows its last start-of-scan (FFDA)."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0
