"""Rendered 3D scenes with exact depth, visibility and correspondences, and HPatches-style patches from them.

A scene is a set of textured rectangles in 3D -- a far background wall, free-standing planes at different
depths and out-of-plane angles, and a box (its six faces) -- that occlude each other. A sequence is
``num_images`` views of it by pinhole cameras moving along an arc with growing rotation (yaw, pitch, roll) and
translation; every view gets the photometric change, blur and noise of :mod:`descnet.data.synth`. Each
rectangle is rendered exactly by its own homography (texture pixel -> image, ``cv2.warpPerspective``) and a
per-pixel depth from its plane; a z-buffer keeps the nearest surface. So every pixel of every view has an
exact depth and surface id, and a pixel ``x`` of view ``i`` corresponds to

    X = R_i^T (depth_i(x) K^-1 [x, 1] - t_i),     x' = pi(K (R_j X + t_j))   in view j,

*visible* there when view j sees the same surface at ``x'`` at that depth (:func:`correspond`): points across
occlusion boundaries and out-of-plane rotations can be sampled without limit.

Conventions: cameras ``x_cam = R X + t`` (world -> camera), ``K`` with pixel centres at integers (descnet's
keypoint convention, :mod:`descnet.features.files`), depth = z in the camera frame, surface id ``-1`` = nothing.

On disk (:func:`write_scene_sequences`, ``descnet data synth --kind scene3d``)::

    OUT/synth.json                              options, seed, sources, rows per sequence
    OUT/scenes/<name>/1.png .. n.png            the rendered views (RGB)
    OUT/scenes/<name>/geometry.npz              K (3, 3), R (n, 3, 3), t (n, 3), depth (n, H, W) float32,
                                                surface (n, H, W) int16 (read with :func:`read_scene`)
    OUT/hpatches-release/v_<name>/<type>.png    HPatches-style patches (ref, e1..e5, h1..h5, t1..t5): DoG
                                                regions of view 1 whose centre all views see, mapped into
                                                view k by the homography of the centre's plane composed
                                                with the e/h/t jitter of :mod:`descnet.data.patchify`
    OUT/tasks/                                  HPatches task files (split full), for `eval hpatches`

so training takes it as ``data.source: patchset`` with ``data.root: OUT``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["Scene3DOptions", "Surface", "random_scene", "random_cameras", "render_view", "render_scene_sequence",
           "correspond", "plane_homography", "scene_patches", "write_scene_sequences", "read_scene"]


@dataclass(frozen=True)
class Scene3DOptions:
    """How a 3D scene sequence is made.

    Attributes:
        size: (W, H) of every view. focal: focal length in pixels as a multiple of W.
        num_images: views per sequence (HPatches-style patches need 6).
        planes: free-standing textured planes in front of the background wall (a box is added too).
        tilt: largest out-of-plane angle of a plane, degrees.
        yaw, pitch, roll: largest camera rotation of the last view, degrees (growing linearly along the sequence).
        baseline: largest camera translation of the last view, as a fraction of the scene depth (about 8 units).
        photometric: strength of the photometric change (:func:`descnet.data.synth.photometric_change`) of the
            last view; blur and noise as :class:`descnet.data.synth.SynthOptions`.
        max_points: HPatches-style rows per sequence at most (strongest DoG regions first).
        magnification: region half-side in units of the DoG scale sigma (12: what ``describe`` cuts for SIFT).
    """

    size: tuple[int, int] = (640, 480)
    focal: float = 1.0
    num_images: int = 6
    planes: int = 5
    tilt: float = 60.0
    yaw: float = 15.0
    pitch: float = 8.0
    roll: float = 10.0
    baseline: float = 0.12
    photometric: float = 0.5
    blur: float = 1.0
    noise: float = 2.0
    max_points: int = 1000
    magnification: float = 12.0

    def __post_init__(self) -> None:
        from descnet.data.synth import MAX_SIDE

        w, h = self.size
        if not (64 <= w <= MAX_SIDE and 64 <= h <= MAX_SIDE):
            raise ValueError(f"size must be from 64x64 to {MAX_SIDE}x{MAX_SIDE}, got {w}x{h}")
        if self.num_images < 2 or self.planes < 0 or self.max_points < 1:
            raise ValueError("num_images must be >= 2, planes >= 0 and max_points >= 1")
        for name in ("focal", "magnification"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("tilt", "yaw", "pitch", "roll", "baseline", "photometric", "blur", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tilt >= 85:
            raise ValueError(f"tilt must be below 85 degrees, got {self.tilt}")

    @property
    def K(self) -> np.ndarray:
        w, h = self.size
        f = self.focal * w
        return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


@dataclass
class Surface:
    """A textured rectangle: ``corner`` (3,), edges ``u``, ``v`` (3,) in world units, ``texture`` uint8 (h, w, 3);
    texture pixel (a, b) (column, row; centres at integers) sits at
    ``corner + (a + 0.5) / w * u + (b + 0.5) / h * v``."""

    corner: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World -> camera rotation for yaw (about y), pitch (about x), roll (about z), radians."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _texture(rng: np.random.Generator, size: tuple[int, int], sources: Sequence[np.ndarray] | None) -> np.ndarray:
    from descnet.data.synth import _cover, procedural_image

    if not sources:
        return procedural_image(size, rng)
    image = sources[int(rng.integers(len(sources)))]
    image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]  # a random crop of at least half the photo, then resized to the texture size
    cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return _cover(image[y0:y0 + ch, x0:x0 + cw, :3], size)


def random_scene(options: Scene3DOptions, rng: np.random.Generator,
                 sources: Sequence[np.ndarray] | None = None) -> list[Surface]:
    """A background wall at depth 10, ``options.planes`` tilted planes at depths 3 to 8 and a box, textured from
    ``sources`` (random crops) or procedural textures. Units: the cameras look down +z from near the origin."""
    surfaces = [Surface(np.array([-9.0, -7.0, 10.0]), np.array([18.0, 0, 0]), np.array([0, 14.0, 0]),
                        _texture(rng, (1024, 800), sources))]
    tilt = np.deg2rad(options.tilt)
    for _ in range(options.planes):
        depth = rng.uniform(3.0, 8.0)
        width, height = rng.uniform(0.3, 0.7, 2) * depth
        centre = np.array([rng.uniform(-0.45, 0.45) * depth, rng.uniform(-0.3, 0.3) * depth, depth])
        r = _rotation(rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt) / 2, rng.uniform(-np.pi, np.pi))
        u, v = r.T @ np.array([width, 0, 0]), r.T @ np.array([0, height, 0])
        px = int(np.clip(256 * width / 2, 96, 768))
        surfaces.append(Surface(centre - u / 2 - v / 2, u, v, _texture(rng, (px, int(px * height / width)), sources)))
    # a box: six faces of a rotated cuboid
    side = rng.uniform(1.0, 2.0, 3)
    centre = np.array([rng.uniform(-2, 2), rng.uniform(-1, 1.5), rng.uniform(4.5, 7.0)])
    r = _rotation(rng.uniform(-np.pi, np.pi), rng.uniform(-0.4, 0.4), 0.0).T
    ex, ey, ez = (r[:, i] * side[i] for i in range(3))
    base = centre - (ex + ey + ez) / 2
    for corner, u, v in ((base, ex, ey), (base + ez, ex, ey), (base, ex, ez), (base + ey, ex, ez),
                         (base, ey, ez), (base + ex, ey, ez)):
        surfaces.append(Surface(corner, u, v, _texture(rng, (192, 192), sources)))
    return surfaces


def random_cameras(options: Scene3DOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera ``n`` of a sequence: rotation and translation growing with ``(n - 1) / (num_images - 1)`` towards
    random signed maxima of :class:`Scene3DOptions`. Returns R ``(n, 3, 3)``, t ``(n, 3)`` (world -> camera)."""
    n = options.num_images
    sign = rng.choice([-1.0, 1.0], 3)
    angles = np.deg2rad([options.yaw, options.pitch, options.roll]) * sign * rng.uniform(0.5, 1.0, 3)
    direction = rng.normal(size=3) * np.array([1.0, 0.5, 0.5])
    direction /= np.linalg.norm(direction)
    shift = direction * options.baseline * 8.0 * rng.uniform(0.5, 1.0)
    look = np.array([0.0, 0.0, 6.0])  # the cameras turn about the middle of the scene
    Rs, ts = [], []
    for k in range(n):
        s = k / max(n - 1, 1)
        R = _rotation(*(s * angles))
        centre = look - R.T @ np.array([0.0, 0.0, 6.0]) + s * shift
        Rs.append(R)
        ts.append(-R @ centre)
    return np.stack(Rs), np.stack(ts)


def plane_homography(surface: Surface, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Texture pixel (a, b, 1) -> image pixel, float64 ``(3, 3)``, for a camera ``x_cam = R X + t``."""
    h, w = surface.texture.shape[:2]
    origin = surface.corner + 0.5 * surface.u / w + 0.5 * surface.v / h
    return K @ np.column_stack([R @ (surface.u / w), R @ (surface.v / h), R @ origin + t])


def render_view(surfaces: Sequence[Surface], K: np.ndarray, R: np.ndarray, t: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One exact view: float32 RGB ``(H, W, 3)``, float32 depth ``(H, W)`` (inf where nothing), int16 surface id
    ``(H, W)`` (-1 where nothing). Each surface is warped by its homography (anti-aliased when shrunk) and kept
    where it is nearer than what was drawn before (z-buffer)."""
    import cv2

    from descnet.data.synth import _jacobian

    w, h = size
    centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    image = np.zeros((h, w, 3), np.float32)
    depth = np.full((h, w), np.inf, np.float32)
    surface_id = np.full((h, w), -1, np.int16)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.linalg.inv(K) @ np.stack([gx, gy, np.ones((h, w))]).reshape(3, -1)
    for index, s in enumerate(surfaces):
        hom = plane_homography(s, K, R, t)
        normal = R @ np.cross(s.u, s.v)
        offset = normal @ (R @ s.corner + t)  # plane n . X_cam = offset
        denom = normal @ rays
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (offset / denom).reshape(h, w)
        th, tw = s.texture.shape[:2]
        inside = cv2.warpPerspective(np.ones((th, tw), np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        nearer = inside & np.isfinite(z) & (z > 0.1) & (z < depth)
        if not nearer.any():
            continue
        texture = s.texture.astype(np.float32)
        jac = _jacobian(np.linalg.inv(hom), centre)
        shrink = 1 / max(np.sqrt(abs(np.linalg.det(jac))), 1e-9)  # image px per texture px (about)
        if shrink < 0.9:  # texture shrunk: low-pass it first
            texture = cv2.GaussianBlur(texture, (0, 0), 0.5 * np.sqrt(1 / shrink ** 2 - 1))
        warped = cv2.warpPerspective(texture, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        image[nearer] = warped[nearer]
        depth[nearer] = z[nearer]
        surface_id[nearer] = index
    return image, depth, surface_id


def render_scene_sequence(options: Scene3DOptions, rng: np.random.Generator,
                          sources: Sequence[np.ndarray] | None = None, photometric: bool = True) -> dict[str, Any]:
    """A random scene seen by ``num_images`` cameras -> ``{"images": [uint8 (H, W, 3)], "depth": float32 (n, H,
    W), "surface": int16 (n, H, W), "K", "R" (n, 3, 3), "t" (n, 3), "surfaces": [Surface]}``. ``photometric``:
    apply the photometric change, blur and noise (geometry is never changed by them)."""
    import cv2

    from descnet.data.synth import SynthOptions, photometric_change

    surfaces = random_scene(options, rng, sources)
    R, t = random_cameras(options, rng)
    K = options.K
    synth = SynthOptions(size=options.size)
    images, depths, ids = [], [], []
    for k in range(options.num_images):
        view, depth, surface_id = render_view(surfaces, K, R[k], t[k], options.size)
        if photometric:
            strength = options.photometric * k / max(options.num_images - 1, 1)
            view = photometric_change(view, strength, synth, rng)
            sigma = options.blur * rng.uniform(0, 1)
            if k and sigma > 0.3:
                view = cv2.GaussianBlur(view, (0, 0), sigma)
            if options.noise > 0:
                view = view + rng.standard_normal(view.shape, dtype=np.float32) * np.float32(
                    options.noise * rng.uniform(0, 1))
        images.append(np.clip(np.round(view), 0, 255).astype(np.uint8))
        depths.append(depth)
        ids.append(surface_id)
    return {"images": images, "depth": np.stack(depths), "surface": np.stack(ids), "K": K, "R": R, "t": t,
            "surfaces": surfaces}


def correspond(points: np.ndarray, i: int, j: int, scene: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Where pixels of view ``i`` are in view ``j``, and whether view j sees them.

    ``points`` float ``(N, 2)`` pixel positions in view i (depth and surface read at the nearest pixel) -> float64
    ``(N, 2)`` positions in view j and bool ``(N,)`` visibility: in view j's image, in front of its camera, and
    the surface view j shows at the nearest pixel of ``x'`` is the point's own (a flat surface cannot hide
    itself, so anything else there is in front of it). Points on no surface map to NaN, not visible.
    """
    K, R, t = scene["K"], scene["R"], scene["t"]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    h, w = scene["depth"].shape[1:]
    col = np.clip(np.rint(pts[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(pts[:, 1]).astype(int), 0, h - 1)
    z = scene["depth"][i][row, col].astype(np.float64)
    surface = scene["surface"][i][row, col]
    ok = np.isfinite(z) & (surface >= 0)
    rays = np.linalg.inv(K) @ np.c_[pts, np.ones(len(pts))].T
    world = R[i].T @ (rays * np.where(ok, z, np.nan) - t[i][:, None])
    cam = R[j] @ world + t[j][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        proj = (K @ cam)[:2] / cam[2]
    out = proj.T
    inside = ok & (cam[2] > 0) & (out[:, 0] >= -0.5) & (out[:, 0] < w - 0.5) & (out[:, 1] >= -0.5) & \
        (out[:, 1] < h - 0.5)
    visible = np.zeros(len(pts), bool)
    if inside.any():
        c2 = np.clip(np.rint(out[inside, 0]).astype(int), 0, w - 1)
        r2 = np.clip(np.rint(out[inside, 1]).astype(int), 0, h - 1)
        # a flat surface cannot hide itself: the point is seen iff view j shows its surface there
        visible[inside] = scene["surface"][j][r2, c2] == surface[inside]
    return out, visible


def _surface_homography(scene: dict[str, Any], surface: int, i: int, j: int) -> np.ndarray:
    """Pixel of view i -> pixel of view j for points on ``surface`` (its plane-induced homography)."""
    s = scene["surfaces"][surface]
    hi = plane_homography(s, scene["K"], scene["R"][i], scene["t"][i])
    hj = plane_homography(s, scene["K"], scene["R"][j], scene["t"][j])
    return hj @ np.linalg.inv(hi)


def scene_patches(scene: dict[str, Any], options: Scene3DOptions, rng: np.random.Generator,
                  jitter: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """HPatches-style patch stacks of one rendered sequence (module docstring).

    Regions: DoG detections of view 1 (:func:`descnet.data.patchify.detect_regions`), half-side
    ``magnification * sigma``, merged when overlapping by more than 0.8, dominant orientation; kept when the
    centre is visible in every view and every jittered frame lies inside its view. The frame in view k is the
    homography of the centre's plane (view 1 -> k) times the reference frame times the level's jitter.
    Returns ``{type: uint8 (N, 65, 65)}`` for ``ref, e1..e{n-1}, h1.., t1..``.
    """
    import cv2

    from descnet.data.patchify import (JITTER_LEVELS, Pyramid, detect_regions, dominant_orientations,
                                       frames_inside, image_types, merge_overlapping, reference_frames, warp_patches)

    jitter = jitter or JITTER_LEVELS
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in scene["images"]]
    n = len(grey)
    w, h = options.size
    pyramids = [Pyramid(g) for g in grey]
    regions = detect_regions(grey[0], ("dog",), pyramids[0], 1.6)
    xy, half = regions[:, :2], options.magnification * regions[:, 2]
    fits = (xy[:, 0] - half >= 0) & (xy[:, 0] + half <= w - 1) & (xy[:, 1] - half >= 0) & (xy[:, 1] + half <= h - 1)
    regions, xy, half = regions[fits], xy[fits], half[fits]
    keep = merge_overlapping(xy, half, 0.8)
    regions, xy, half = regions[keep], xy[keep], half[keep]
    visible = np.ones(len(xy), bool)
    for k in range(1, n):
        visible &= correspond(xy, 0, k, scene)[1]
    regions, xy, half = regions[visible], xy[visible], half[visible]
    types = image_types(n, list(jitter))
    if not len(xy):
        return {kind: np.zeros((0, 65, 65), np.uint8) for kind in types}
    angle = dominant_orientations(pyramids[0], xy, regions[:, 2])
    ref = reference_frames(xy, half, angle)
    col = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    surface = scene["surface"][0][row, col]
    frames = {"ref": ref}
    for level, noise in jitter.items():
        for k in range(1, n):
            maps = np.empty_like(ref)
            for s in np.unique(surface).tolist():
                on = surface == s
                maps[on] = _surface_homography(scene, s, 0, k) @ ref[on]
            frames[f"{level}{k}"] = maps @ noise.sample(len(ref), rng)
    inside = np.ones(len(ref), bool)
    for kind, maps in frames.items():
        inside &= frames_inside(maps, options.size)
    count = min(int(inside.sum()), options.max_points)
    chosen = np.flatnonzero(inside)[:count]
    out = {}
    for kind in types:
        k = 0 if kind == "ref" else int(kind[1:])
        out[kind] = warp_patches(pyramids[k], frames[kind][chosen], 65)
    return out


def _image_arrays(images: Any) -> list[np.ndarray] | None:
    from descnet.data.images import read_image
    from descnet.data.synth import _image_files

    if images is None:
        return None
    return [read_image(p, gray=False) for p in _image_files(images)]


def write_scene_sequences(out: str | os.PathLike, count: int = 10, images: Any = None, seed: int = 0,
                          options: Scene3DOptions = Scene3DOptions(), overwrite: bool = False,
                          progress: bool = False) -> dict[str, Any]:
    """Render ``count`` 3D scene sequences into ``out`` with their geometry and HPatches-style patches (module
    docstring). Sequence ``i`` is drawn from ``default_rng([seed, i, 3])``; textures are random crops of
    ``images`` (a folder or files) or procedural. Returns the content of ``synth.json``."""
    from descnet.data.hpatches import write_custom_tasks, write_patch_stack
    from descnet.data.images import write_image
    from descnet.data.synth import MARKER, _earlier_output, _image_files, check_output_folder
    from descnet.io import result_set, write_json

    if count < 1:
        raise ValueError(f"--sequences must be at least 1, got {count}")
    out = check_output_folder(out, MARKER, overwrite)
    sources = _image_arrays(images)
    names, rows = [], {}
    iterator = range(count)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="synth 3d", unit="seq")
    with result_set(out, overwrite=True, earlier=[*_earlier_output(out), "scenes", "hpatches-release", "tasks"]) \
            as staged:
        tmp = staged.dir
        for i in iterator:
            rng = np.random.default_rng([seed, i, 3])
            scene = render_scene_sequence(options, rng, sources)
            name = f"s3d{i:03d}"
            folder = tmp / "scenes" / name
            for k, image in enumerate(scene["images"], start=1):
                write_image(folder / f"{k}.png", image)
            np.savez_compressed(folder / "geometry.npz", K=scene["K"], R=scene["R"], t=scene["t"],
                                depth=scene["depth"].astype(np.float32), surface=scene["surface"])
            names.append(name)
            if options.num_images == 6:
                patches = scene_patches(scene, options, rng)
                if len(patches["ref"]):
                    for kind, stack in patches.items():
                        write_patch_stack(tmp / "hpatches-release" / f"v_{name}" / f"{kind}.png", stack)
                    rows[f"v_{name}"] = len(patches["ref"])
        summary = {"descnet": "synth", "kind": "scene3d", "seed": seed, "count": count,
                   "options": dataclasses.asdict(options),
                   "images": None if images is None else [str(p) for p in _image_files(images)],
                   "sequences": ["scenes", "hpatches-release", "tasks"], "scenes": names, "rows": rows}
        if rows:
            summary["tasks"] = write_custom_tasks(tmp / "tasks", rows, None, seed=seed)
        write_json(tmp / MARKER, summary)
    return summary


def read_scene(folder: str | os.PathLike) -> dict[str, Any]:
    """A sequence written by :func:`write_scene_sequences` -> ``{"images", "depth", "surface", "K", "R", "t"}``
    (what :func:`correspond` needs)."""
    from descnet.data.images import read_image

    folder = Path(folder)
    path = folder / "geometry.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not a scene written by descnet data synth --kind scene3d)")
    with np.load(path) as g:
        scene = {k: g[k] for k in ("K", "R", "t", "depth", "surface")}
    n = len(scene["R"])
    scene["images"] = [read_image(folder / f"{k}.png", gray=False) for k in range(1, n + 1)]
    return scene
