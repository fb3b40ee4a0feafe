"""The 3D side: cameras, relative pose and its metrics, alignment to ground truth, reconstruction with COLMAP.

One module per idea::

    colmap      structure from motion through pycolmap: features + matches files -> a sparse 3D model
    pipeline    photos -> describe, match, reconstruct in one call (``reconstruct_images``)
    triangulate a sparse 3D model from known cameras (hloc's triangulation)
    tracks      a model's observations as plain arrays, track filters, training patches of its 3D points

Names load on first use (PEP 562), so importing the package loads neither pycolmap nor OpenCV.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_LAZY = {
    "SfmOptions": ".colmap", "SfmSummary": ".colmap", "reconstruct": ".colmap",
    "reconstruct_colmap_sift": ".colmap", "import_pycolmap": ".colmap", "reconstruct_images": ".pipeline",
    "KnownCamera": ".triangulate", "triangulate_known_cameras": ".triangulate",
    "Tracks": ".tracks", "TrackFilter": ".tracks", "read_tracks": ".tracks", "filter_tracks": ".tracks",
    "ReconstructionPatchOptions": ".tracks", "reconstruction_patches": ".tracks",
}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
