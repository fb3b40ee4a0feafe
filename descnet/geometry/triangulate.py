"""Triangulation from known cameras with COLMAP (pycolmap): features + matches + poses -> a sparse 3D model.

>>> cameras = read_strecha_scene("Herz-Jesus-P8")   # {"0000.jpg": Camera(K, R_cam_from_world, C, 3072, 2048), ...}
>>> model = triangulate_known_cameras("images", "features.h5", "matches.h5", cameras, "sfm")

hloc's ``triangulation.py`` on pycolmap's own API: the database is written as for ``descnet reconstruct``
(:func:`descnet.geometry.colmap.create_database`: keypoints + 0.5 px, every match, repeated SIFT positions
merged), COLMAP verifies the matches geometrically, then an empty reconstruction with the *given* cameras
(pinhole, the known intrinsics, one per image) and poses (``x ~ K (R X + t)``, COLMAP's ``cam_from_world``)
under the database's image and camera ids is filled by ``pycolmap.triangulate_points`` (no pose or
intrinsics refinement). A camera ``K`` must be for the image as described (scale it with the image).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .cameras import Camera

__all__ = ["triangulate_known_cameras"]


def triangulate_known_cameras(image_dir: str | os.PathLike, features: str | os.PathLike, matches: str | os.PathLike,
                              cameras: Mapping[str, Camera], out: str | os.PathLike, *,
                              verbose: bool = False) -> Any:
    """Triangulate the matches of ``matches`` with the known ``cameras`` (module docstring).

    ``cameras``: image name (as in the features file) -> :class:`descnet.geometry.cameras.Camera` (pixel centres at integers;
    :meth:`~descnet.geometry.cameras.Camera.resized` for resized images); every image of the matches file
    needs one. Writes ``out/database.db`` and the model ``out/model`` (COLMAP binary), returns the
    ``pycolmap.Reconstruction``.
    """
    from ..features.files import list_match_pairs
    from ..features.pairs import write_pairs
    from ..io import atomic_dir
    from .colmap import COLMAP_ORIGIN_SHIFT, SfmOptions, _colmap_log, _verify, create_database, import_pycolmap

    pycolmap = import_pycolmap()
    out = Path(out)
    pairs = list_match_pairs(matches)
    names = sorted({n for pair in pairs for n in pair})
    missing = [n for n in names if n not in cameras]
    if missing:
        raise ValueError(f"no known camera for {missing[0]} ({len(missing)} image(s) of {matches} without one)")
    if (out / "model").exists() or (out / "database.db").exists():
        raise FileExistsError(f"{out}: holds a model or database already; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".triangulate-") as work:
        work = Path(work)
        database = work / "database.db"
        create_database(database, image_dir, features, matches, pairs, camera_mode="per-image", verbose=verbose)
        write_pairs(work / "pairs.txt", pairs)
        with _colmap_log(pycolmap, verbose):
            _verify(pycolmap, database, work / "pairs.txt", SfmOptions())
        reconstruction = pycolmap.Reconstruction()
        with pycolmap.Database.open(database) as db:
            for image in sorted(db.read_all_images(), key=lambda im: im.image_id):
                known = cameras[image.name]
                camera = db.read_camera(image.camera_id)
                if (camera.width, camera.height) != (known.width, known.height):
                    raise ValueError(f"{image.name}: the image is {camera.width}x{camera.height} but its known camera "
                                     f"is for {known.width}x{known.height} (scale the camera with the image)")
                K = known.K
                params = [K[0, 0], K[1, 1], K[0, 2] + COLMAP_ORIGIN_SHIFT, K[1, 2] + COLMAP_ORIGIN_SHIFT]
                pinhole = pycolmap.Camera(model="PINHOLE", width=known.width, height=known.height, params=params,
                                          camera_id=image.camera_id)
                db.update_camera(pinhole)
                reconstruction.add_camera_with_trivial_rig(pinhole)
                keypoints = db.read_keypoints(image.image_id)[:, :2].astype(np.float64)
                new = pycolmap.Image(name=image.name, keypoints=keypoints, camera_id=image.camera_id,
                                     image_id=image.image_id)
                pose = pycolmap.Rigid3d(np.column_stack([known.R, known.t]))
                reconstruction.add_image_with_trivial_frame(new, pose)
        with _colmap_log(pycolmap, verbose):
            model = pycolmap.triangulate_points(reconstruction, database, Path(image_dir), work / "triangulated",
                                                clear_points=True, refine_intrinsics=False)
        with atomic_dir(out / "model") as tmp:
            model.write(tmp)
        os.replace(database, out / "database.db")
    return model
