"""Synthetic image sequences with exact homographies, in the HPatches full-image layout.

Each sequence is rendered from one planar "scene" (a procedurally generated texture, or a user's image):
image 1 is a crop of the scene, image k is the scene seen through the homography ``H_1_k``, so the ground
truth is exact up to interpolation. Then each image gets photometric changes (gain, gamma, shading,
colour cast, blur, noise) and the target images random occluders, which break the homography locally
as real scenes do.

* ``v_*`` (viewpoint) sequences: rotation, zoom and perspective growing from image 2 to image n,
  mild photometric change.
* ``i_*`` (illumination) sequences: near-identity homographies (sub-pixel to ``illumination_shift``
  px corner motion) and strong photometric change growing along the sequence.

Scenes with real depth (planes and a box occluding each other, a camera that rotates and translates) are
:mod:`descnet.data.scene3d`'s (``descnet data synth --kind scene3d``).

Everything is drawn from ``numpy.random.default_rng([seed, index])``, so sequence ``index`` is the same
whatever the number of sequences made. Output (see :func:`write_synthetic_sequences`)::

    OUT/synth.json                      options, seed, sources
    OUT/v_synth000/1.ppm..6.ppm, H_1_2..H_1_6
    OUT/i_synth001/...
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["SynthOptions", "procedural_image", "viewpoint_homography", "illumination_homography",
           "photometric_change", "synthetic_sequence", "write_synthetic_sequences", "check_output_folder"]

MARKER = "synth.json"


#: the largest image side :class:`SynthOptions` accepts (a 4096x4096 sequence needs about 2 GB of memory)
MAX_SIDE = 4096


@dataclass(frozen=True)
class SynthOptions:
    """How strong each change is. "Largest" values are reached at the last image of a sequence.

    Attributes:
        size: (W, H) of every image.
        num_images: images per sequence (HPatches: 6).
        rotation: largest in-plane rotation of a viewpoint sequence, degrees.
        zoom: largest zoom factor of a viewpoint sequence (zoom in or out by up to this factor).
        perspective: largest extra corner displacement of a viewpoint sequence, fraction of the image size.
        illumination_shift: largest corner displacement of an illumination sequence, pixels.
        gain: largest brightness factor of an illumination sequence (x gain or / gain).
        gamma: largest gamma of an illumination sequence (^gamma or ^(1/gamma)).
        shading: largest amplitude of a smooth illumination gradient across the image (0 = none).
        viewpoint_photometric: photometric strength of viewpoint sequences relative to illumination ones.
        blur: largest Gaussian blur sigma of a target image, pixels.
        noise: largest Gaussian noise std, grey levels (0..255), on every image.
        occlusion: largest fraction of a target image covered by occluders.
    """

    size: tuple[int, int] = (640, 480)
    num_images: int = 6
    rotation: float = 30.0
    zoom: float = 1.6
    perspective: float = 0.12
    illumination_shift: float = 1.5
    gain: float = 2.0
    gamma: float = 1.8
    shading: float = 0.6
    viewpoint_photometric: float = 0.35
    blur: float = 1.2
    noise: float = 3.0
    occlusion: float = 0.06

    def __post_init__(self) -> None:
        w, h = self.size
        if w < 64 or h < 64:
            raise ValueError(f"size must be at least 64x64, got {w}x{h}")
        if w > MAX_SIDE or h > MAX_SIDE:
            raise ValueError(f"size {w}x{h}: at most {MAX_SIDE} pixels a side (the scene behind a sequence is "
                             f"larger still and is held in memory); choose a smaller size")
        if self.num_images < 2:
            raise ValueError(f"num_images must be at least 2, got {self.num_images}")
        if self.zoom < 1 or self.gain < 1 or self.gamma < 1:
            raise ValueError("zoom, gain and gamma are factors >= 1 (1 = no change)")
        for name in ("rotation", "perspective", "illumination_shift", "shading", "viewpoint_photometric",
                     "blur", "noise", "occlusion"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.perspective > 0.2 or self.occlusion > 0.5:
            raise ValueError("perspective must be <= 0.2 and occlusion <= 0.5")

    @classmethod
    def clean(cls, **overrides) -> "SynthOptions":
        """Geometry only: no photometric change, blur, noise or occlusion (for checking the homographies)."""
        base = dict(gain=1.0, gamma=1.0, shading=0.0, blur=0.0, noise=0.0, occlusion=0.0)
        return cls(**{**base, **overrides})


# ---------------------------------------------------------------------------------------------- textures

def procedural_image(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A textured RGB image ``(H, W, 3)`` uint8: multi-scale noise, a gradient, random shapes and
    text-like strokes at many scales, so that corner and blob detectors (SIFT, Harris) fire densely."""
    import cv2

    w, h = size
    # multi-scale value noise, coloured between two random colours, plus a linear gradient
    base = np.zeros((h, w), np.float32)
    for octave in range(1, 8):
        cell = 2 ** octave
        small = rng.random((h // cell + 2, w // cell + 2), dtype=np.float32)
        base += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(cell ** 0.5)
    base = (base - base.min()) / max(float(np.ptp(base)), 1e-6)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.arange(w, dtype=np.float32)[None] * np.float32(np.cos(angle) / max(w, h))
            + np.arange(h, dtype=np.float32)[:, None] * np.float32(np.sin(angle) / max(w, h)))
    c0, c1 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    slope = rng.uniform(-60, 60, 3).astype(np.float32)
    img = cv2.merge([np.clip(c0[i] + base * (c1[i] - c0[i]) + ramp * slope[i], 0, 255).astype(np.uint8)
                     for i in range(3)])

    area = w * h
    smallest, largest = 3.0, max(8.0, min(w, h) / 4)
    for _ in range(int(area / 2500)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        radius = float(np.exp(rng.uniform(np.log(smallest), np.log(largest))))
        cx, cy = rng.uniform(-radius, w + radius), rng.uniform(-radius, h + radius)
        thickness = -1 if rng.random() < 0.75 else int(rng.integers(1, 4))
        shape = rng.integers(0, 4)
        if shape == 0:
            axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.3, 1.0))))
            cv2.ellipse(img, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, color, thickness,
                        cv2.LINE_AA)
        else:  # rotated rectangle (1), triangle or star-like polygon (2, 3)
            if shape == 1:
                corners = cv2.boxPoints(((cx, cy), (2 * radius, 2 * radius * rng.uniform(0.2, 1.0)),
                                         rng.uniform(0, 180)))
            else:
                n = 3 if shape == 2 else int(rng.integers(5, 9))
                angles = np.sort(rng.uniform(0, 2 * np.pi, n))
                radii = radius * rng.uniform(0.4, 1.0, n)
                corners = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            pts = np.round(corners).astype(np.int32).reshape(-1, 1, 2)
            if thickness < 0:
                cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], True, color, thickness, cv2.LINE_AA)
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
             cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
    letters = string.ascii_letters + string.digits
    for _ in range(int(area / 12000)):
        text = "".join(rng.choice(list(letters), int(rng.integers(2, 9))))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        org = (int(rng.integers(-20, w)), int(rng.integers(10, h + 20)))
        cv2.putText(img, text, org, fonts[int(rng.integers(len(fonts)))], float(np.exp(rng.uniform(-0.7, 1.0))),
                    color, int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(int(area / 20000)):  # pen strokes: short random walks
        n = int(rng.integers(3, 8))
        steps = rng.normal(0, rng.uniform(5, 25), (n, 2)).cumsum(0)
        pts = np.round(steps + rng.uniform((0, 0), (w, h))).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 4)),
                      cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 0.6)


def _cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (keeping the aspect ratio) and centre-crop ``image`` to exactly ``size`` = (W, H)."""
    import cv2

    w, h = size
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    nw, nh = max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale)))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(resized[y0:y0 + h, x0:x0 + w])


# ---------------------------------------------------------------------------------------------- geometry

def _corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)


def _from_corners(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    import cv2

    h = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
    return h / h[2, 2]


def viewpoint_homography(size: tuple[int, int], strength: float, options: SynthOptions,
                         rng: np.random.Generator) -> np.ndarray:
    """A random viewpoint change ``(3, 3)`` float64 for images of ``size`` = (W, H).

    ``strength`` in [0, 1] scales the rotation, zoom and perspective (1 = the largest of ``options``).
    The image centre stays inside the view, so image 1 and image k always overlap.
    """
    w, h = size
    center = np.array([(w - 1) / 2, (h - 1) / 2])
    theta = np.deg2rad(options.rotation) * strength * rng.uniform(0.5, 1.0) * rng.choice([-1, 1])
    zoom = float(np.exp(np.log(options.zoom) * strength * rng.uniform(-1, 1)))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src = _corners(size)
    dst = center + zoom * (src - center) @ rot.T
    dst += rng.uniform(-1, 1, (4, 2)) * options.perspective * strength * np.array([w, h])
    dst += rng.uniform(-1, 1, 2) * 0.1 * strength * np.array([w, h])  # the camera drifts
    return _from_corners(src, dst)


def illumination_homography(size: tuple[int, int], shift: float, rng: np.random.Generator) -> np.ndarray:
    """A near-identity homography: each image corner moves by at most ``shift`` pixels."""
    src = _corners(size)
    return _from_corners(src, src + rng.uniform(-shift, shift, (4, 2)))


def _jacobian(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``(2, 2)`` Jacobian of the projective map ``m`` at the homogeneous point ``p``."""
    q = m @ p
    return (m[:2, :2] - np.outer(q[:2] / q[2], m[2, :2])) / q[2]


def _scene_box(size: tuple[int, int], homographies: dict[int, np.ndarray]) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) in image-1 coordinates that every image of the sequence sees."""
    w, h = size
    pts = [_corners(size)]
    for hk in homographies.values():
        p = np.c_[_corners(size), np.ones(4)] @ np.linalg.inv(hk).T
        pts.append(p[:, :2] / p[:, 2:])
    pts = np.concatenate(pts)
    x0, y0 = np.floor(pts.min(0)) - 8
    x1, y1 = np.ceil(pts.max(0)) + 8
    # clamp: beyond this the border is mirrored (only for extreme zoom-outs)
    return int(max(x0, -w)), int(max(y0, -h)), int(min(x1, 2 * w)), int(min(y1, 2 * h))


# ---------------------------------------------------------------------------------------------- photometry

def photometric_change(image: np.ndarray, strength: float, options: SynthOptions,
                       rng: np.random.Generator) -> np.ndarray:
    """Gain, gamma, a smooth shading gradient and a colour cast, scaled by ``strength`` in [0, 1].

    ``image``: float32 ``(H, W, 3)`` in [0, 255] -> the same, changed.
    """
    h, w = image.shape[:2]
    gain = float(np.exp(np.log(options.gain) * strength * rng.uniform(-1, 1)))
    gamma = float(np.exp(np.log(options.gamma) * strength * rng.uniform(-1, 1)))
    x = np.power(np.clip(image / 255.0, 0, 1), gamma, dtype=np.float32)
    if options.shading > 0 and strength > 0:
        a = rng.uniform(0, 2 * np.pi)
        ramp = ((np.arange(w, dtype=np.float32)[None] - w / 2) * np.float32(np.cos(a))
                + (np.arange(h, dtype=np.float32)[:, None] - h / 2) * np.float32(np.sin(a))) / np.float32(
            0.5 * np.hypot(w, h))
        x *= (1 + options.shading * strength * rng.uniform(0.3, 1.0) * ramp)[..., None].clip(0.2, None)
    cast = 1 + 0.12 * strength * rng.uniform(-1, 1, 3).astype(np.float32)
    return np.clip(x * (gain * cast), 0, 1) * 255.0


def _occlude(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Paint 1-3 textured blobs covering about ``fraction`` of ``image`` (float32 (H, W, 3)) in place."""
    import cv2

    h, w = image.shape[:2]
    if fraction <= 0:
        return image
    count = int(rng.integers(1, 4))
    texture = procedural_image((max(64, w // 4), max(64, h // 4)), rng)
    texture = cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(count):
        radius = np.sqrt(fraction * w * h / count / np.pi)
        c = rng.uniform((0, 0), (w, h))
        n = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.6, 1.4, n)
        pts = np.stack([c[0] + radii * np.cos(angles), c[1] + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    image *= 1 - alpha
    image += alpha * texture
    return image


# ---------------------------------------------------------------------------------------------- sequences

def synthetic_sequence(kind: str, rng: np.random.Generator, options: SynthOptions = SynthOptions(),
                       scene: np.ndarray | None = None) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Render one sequence in memory.

    Args:
        kind: ``'viewpoint'`` or ``'illumination'``.
        rng: the random generator (everything is drawn from it).
        options: strengths (see :class:`SynthOptions`).
        scene: an RGB or grey uint8 image to use as the planar scene; ``None`` = procedural texture.

    Returns:
        ``images``: ``options.num_images`` uint8 RGB images ``(H, W, 3)``; ``homographies``: ``{k: H_1_k}``
        for k = 2..n, float64 ``(3, 3)`` with ``[2, 2] = 1``.
    """
    import cv2

    if kind not in ("viewpoint", "illumination"):
        raise ValueError(f"kind must be 'viewpoint' or 'illumination', got {kind!r}")
    w, h = options.size
    n = options.num_images
    strengths = {k: (k - 1) / (n - 1) for k in range(2, n + 1)}
    if kind == "viewpoint":
        homs = {k: viewpoint_homography(options.size, s, options, rng) for k, s in strengths.items()}
        photometric = options.viewpoint_photometric
    else:
        homs = {k: illumination_homography(options.size, options.illumination_shift, rng) for k in strengths}
        photometric = 1.0

    x0, y0, x1, y1 = _scene_box(options.size, homs)
    scene_size = (x1 - x0, y1 - y0)
    if scene is None:
        canvas = procedural_image(scene_size, rng)
    else:
        canvas = scene if scene.ndim == 3 else cv2.cvtColor(scene, cv2.COLOR_GRAY2RGB)
        canvas = _cover(canvas[..., :3], scene_size)
    to_scene = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)  # image-1 pixel -> scene pixel

    images = []
    for k in range(1, n + 1):
        if k == 1:
            view = canvas[-y0:-y0 + h, -x0:-x0 + w].astype(np.float32)
        else:
            m = homs[k] @ np.linalg.inv(to_scene)  # scene -> image k
            shrink = np.sqrt(abs(np.linalg.det(_jacobian(m, to_scene @ [(w - 1) / 2, (h - 1) / 2, 1]))))
            src = canvas
            if shrink < 0.9:  # zooming out: low-pass first so the warp does not alias
                src = cv2.GaussianBlur(canvas, (0, 0), 0.5 * np.sqrt(1 / shrink ** 2 - 1))
            view = cv2.warpPerspective(src, m, (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
            strength = strengths[k] * photometric
            view = photometric_change(view, strength, options, rng)
            if options.occlusion > 0:
                view = _occlude(view, options.occlusion * rng.uniform(0, 1), rng)
            if options.blur > 0:
                sigma = options.blur * rng.uniform(0, 1)
                if sigma > 0.3:
                    view = cv2.GaussianBlur(view, (0, 0), sigma)
        if options.noise > 0:
            view = view + rng.standard_normal(view.shape, dtype=np.float32) * np.float32(
                options.noise * rng.uniform(0, 1))
        images.append(np.clip(np.round(view), 0, 255).astype(np.uint8))
    return images, homs


def check_output_folder(out: str | os.PathLike, marker: str, overwrite: bool) -> Path:
    """Refuse to replace ``out`` unless it is absent, empty, or (with ``overwrite``) an earlier output of
    ours, recognised by its ``marker`` file. Returns ``out`` as a Path."""
    from descnet.io import check_output_parents

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    check_output_parents(out)
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).is_file():
            raise FileExistsError(f"{out}: folder exists, is not empty and has no {marker}; "
                                  f"choose a new or empty folder (nothing was written)")
        if not overwrite:
            raise FileExistsError(f"{out}: holds an earlier output ({marker}); pass --overwrite to replace it")
    return out


def _earlier_output(out: Path) -> list[str]:
    """What an earlier synth output without a manifest holds: its marker and the sequences it lists."""
    try:
        names = json.loads((out / MARKER).read_text()).get("sequences", [])
    except (OSError, ValueError, AttributeError):
        names = []
    return [MARKER, *(n for n in names if isinstance(n, str))]


def _image_files(images: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    from descnet.data.sequences import IMAGE_EXTENSIONS

    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of images")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise ValueError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        return files
    return [Path(p) for p in images]


def write_synthetic_sequences(out: str | os.PathLike, count: int = 10, images=None, seed: int = 0,
                              options: SynthOptions = SynthOptions(), kinds: str = "both",
                              overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write ``count`` synthetic sequences into ``out`` (HPatches layout) plus ``out/synth.json``.

    Args:
        out: output folder; built in a temporary folder and moved into place at the end. An existing
            non-empty folder is replaced only if it holds an earlier output and ``overwrite`` is set.
        count: number of sequences.
        images: ``None`` for procedural textures, or a folder / list of image files used as scenes (in
            sorted order, cycled).
        seed: sequence ``i`` is drawn from ``default_rng([seed, i])``.
        options: strengths and image size.
        kinds: ``'both'`` (alternating ``v_``, ``i_``), ``'viewpoint'`` or ``'illumination'``.

    Returns:
        the sequence folders, in order.
    """
    from descnet.data.images import read_image
    from descnet.data.sequences import write_sequence
    from descnet.io import result_set, write_json

    if count < 1:
        raise ValueError(f"--sequences must be at least 1, got {count}")
    if kinds not in ("both", "viewpoint", "illumination"):
        raise ValueError(f"kinds must be 'both', 'viewpoint' or 'illumination', got {kinds!r}")
    out = check_output_folder(out, MARKER, overwrite)
    sources = _image_files(images) if images is not None else None
    names: list[str] = []
    iterator = range(count)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="synth", unit="seq")
    with result_set(out, overwrite=True, earlier=_earlier_output(out)) as staged:
        tmp = staged.dir
        for i in iterator:
            kind = kinds if kinds != "both" else ("viewpoint", "illumination")[i % 2]
            rng = np.random.default_rng([seed, i])
            if sources is None:
                scene, stem = None, "synth"
            else:
                source = sources[i % len(sources)]
                scene, stem = read_image(source, gray=False), re.sub(r"[^A-Za-z0-9]+", "", source.stem) or "img"
            name = f"{kind[0]}_{stem}{i:03d}"
            imgs, homs = synthetic_sequence(kind, rng, options, scene)
            write_sequence(tmp / name, imgs, homs)
            names.append(name)
        write_json(tmp / MARKER, {
            "descnet": "synth", "seed": seed, "count": count, "kinds": kinds,
            "options": dataclasses.asdict(options),
            "images": None if sources is None else [str(p) for p in sources],
            "sequences": names,
        })
    return [out / name for name in names]
