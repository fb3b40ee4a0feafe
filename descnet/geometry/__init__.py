"""The 3D side: cameras, relative pose and its metrics, alignment to ground truth, reconstruction with COLMAP.

One module per idea::

    cameras     calibrated cameras with poses; Strecha, SuperGlue-pairs and COLMAP readers; relative pose
    pose        relative pose from matches and SuperGlue's pose-error protocol (AUC, precision)
    alignment   a reconstruction's cameras against ground truth (robust similarity, camera errors, mAA)
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
    "triangulate_known_cameras": ".triangulate",
    "Tracks": ".tracks", "TrackFilter": ".tracks", "read_tracks": ".tracks", "filter_tracks": ".tracks",
    "ReconstructionPatchOptions": ".tracks", "reconstruction_patches": ".tracks",
    "Camera": ".cameras", "PosePair": ".cameras", "read_strecha_camera": ".cameras", "read_strecha_scene": ".cameras",
    "read_pairs_with_pose": ".cameras", "cameras_from_colmap": ".cameras", "read_ground_truth": ".cameras",
    "relative_pose": ".cameras", "scale_intrinsics": ".cameras", "rotate_pair": ".cameras",
    "estimate_relative_pose": ".pose", "epipolar_errors": ".pose", "pose_errors": ".pose", "pose_auc": ".pose",
    "evaluate_pair_pose": ".pose", "umeyama": ".alignment", "robust_similarity": ".alignment",
    "camera_errors": ".alignment", "CameraErrors": ".alignment",
}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
