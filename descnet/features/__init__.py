"""Image -> keypoints -> patches -> descriptors -> matches, and the files they are kept in.

One module per step, in the order data flows through them::

    options     the pipeline's choices and option objects (no torch or OpenCV: the CLI's --help reads them)
    keypoints   OpenCV detectors by name; the OpenCV keypoint -> kornia LAF convention
    colmap_sift COLMAP's SIFT detection (pycolmap; OpenCV with its thresholds without it), in descnet's convention
    patches     LAFs -> anti-aliased patches (kornia)
    inference   many patches -> descriptors, batched, on the fastest backend (PyTorch, ONNX Runtime)
    backend_choice  which backend is fastest here: measured once, cached per machine, model and versions
    description images -> Features (keypoints, descriptors, scores, LAFs), in one call or as a stream
    matching    descriptor matching (two nearest neighbours by blocks of one matrix product), verification (OpenCV),
                drawing
    files       the keypoint text file and the hloc-layout HDF5 feature and match files
    pairs       which image pairs to match (exhaustive, sequential, pair files)
    pipeline    the steps over files: a folder of images -> features.h5 -> matches.h5

Names load on first use (PEP 562), so ``descnet.features.options`` imports neither torch nor OpenCV.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_LAZY = {
    "KeypointOptions": ".options", "MatchOptions": ".options",
    "COLMAP_KEYPOINTS": ".options", "COLMAP_MATCHING": ".options",
    "recommended_match_options": ".options", "recommended_matcher": ".options",
    "describe": ".description", "describe_images": ".description", "describe_stream": ".description",
    "detect_keypoints": ".keypoints", "lafs_from_keypoints": ".keypoints", "DETECTORS": ".keypoints",
    "detect_colmap_sift": ".colmap_sift",
    "extract_patches": ".patches",
    "describe_patches": ".inference", "PatchDescriber": ".inference",
    "match": ".matching", "verify": ".matching", "match_pair": ".matching",
    "Features": ".files", "PairMatches": ".files", "read_features": ".files", "read_matches": ".files",
    "make_pairs": ".pairs",
    "describe_to_file": ".pipeline", "match_to_file": ".pipeline",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
