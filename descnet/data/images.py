"""Images: reading (decoding), writing (encoding), listing and grey conversion -- the one place where descnet
decodes and encodes images (numpy and OpenCV only)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_image", "encode_image", "write_image", "IMAGE_SUFFIXES", "list_images", "read_image_list", "to_gray",
           "to_uint8"]

#: file name endings taken as images when a folder is listed (case-insensitive)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp")


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


def encode_image(image: np.ndarray, extension: str = ".png") -> bytes:
    """An ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 / uint16 array -> the bytes of an image file.

    ``extension`` picks the format (``.png``, ``.bmp``, ``.ppm``, ``.jpg`` ... anything OpenCV writes); PPM is
    colour-only, so a grey image becomes three equal channels (read back as the same grey). Raises
    ``ValueError`` for another array or a format OpenCV cannot write.
    """
    import cv2

    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16) or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected a uint8 or uint16 (H, W) grey or (H, W, 3) RGB image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif extension.lower() == ".ppm":
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    try:
        ok, data = cv2.imencode(extension, np.ascontiguousarray(arr))
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"OpenCV cannot encode {arr.dtype} images as {extension}")
    return data.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image file in the format its suffix names (:func:`encode_image`), atomically: the file is
    complete or absent, never half-written."""
    from descnet.io import atomic_path

    path = Path(path)
    try:
        data = encode_image(image, path.suffix)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG is complete when an end-of-image marker (FFD9) follows its last start-of-scan (FFDA)."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files under ``folder`` (recursively, hidden files and folders skipped) -> relative names.

    Names use ``/`` separators and are sorted; an image is a file whose name ends in :data:`IMAGE_SUFFIXES`.
    Raises ``FileNotFoundError`` / ``ValueError`` for a missing folder or one without images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise (ValueError if root.exists() else FileNotFoundError)(f"{root}: no such image folder")
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                names.append((Path(dirpath) / name).relative_to(root).as_posix())
    if not names:
        raise ValueError(f"{root}: no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
    return sorted(names)


def read_image_list(path: str | os.PathLike) -> list[str]:
    """An image list file (hloc's): one relative image name per line; blank lines and ``#`` lines skipped.

    Only the first field of a line is used (hloc's lists with intrinsics have more). Duplicates are an error.
    """
    from descnet.io import read_text_rows

    names, seen = [], set()
    for number, fields in read_text_rows(path, "image list"):
        name = fields[0]
        if name in seen:
            raise ValueError(f"{path}, line {number}: {name} is listed twice")
        seen.add(name)
        names.append(name)
    if not names:
        raise ValueError(f"{path}: lists no images")
    return names


def to_gray(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey, RGB or RGBA image, uint8 / uint16 / float in [0, 1] -> ``(H, W)`` float32 grey in [0, 1].

    Colour arrays are taken as RGB (numpy/PIL order; :func:`read_image` returns RGB) and converted with
    OpenCV's weights (0.299 R + 0.587 G + 0.114 B).
    """
    if type(image).__module__.split(".")[0] == "torch":
        raise TypeError(f"{name}: pass a numpy (H, W) or (H, W, 3) array or a file path, not a torch tensor")
    import cv2

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"{name}: expected an (H, W) grey or (H, W, 3) RGB image, got shape {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{name}: empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        gray = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        gray = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        gray = arr.astype(np.float32)
        if not np.isfinite(gray).all() or gray.min() < 0.0 or gray.max() > 1.0:
            raise ValueError(f"{name}: a float image must have finite values in [0, 1], got "
                             f"[{np.nanmin(gray):g}, {np.nanmax(gray):g}]")
    else:
        raise TypeError(f"{name}: pixels must be uint8, uint16 or float in [0, 1], got {arr.dtype}")
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray[..., :3]), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(gray)


def to_uint8(gray: np.ndarray) -> np.ndarray:
    """``(H, W)`` float grey in [0, 1] -> uint8 (rounded), as OpenCV's detectors take it."""
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
