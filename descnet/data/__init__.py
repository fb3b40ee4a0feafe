"""Datasets on disk: readers, writers and downloads (numpy, cv2 and h5py only; no torch needed).

Names load lazily on first use, so ``import descnet.data`` is cheap::

    from descnet.data import PhotoTour
    liberty = PhotoTour("data/brown", "liberty")       # patches (N, 64, 64) uint8, labels, matches
"""
from __future__ import annotations

from ..lazy import lazy_attributes

# public name -> module that defines it (PEP 562 lazy attributes); add one line per new name
_LAZY = {
    "PhotoTour": "descnet.data.phototour",
    "read_mosaic": "descnet.data.phototour",
    "write_phototour": "descnet.data.phototour",
    "download_dataset": "descnet.data.download",
    "HPatches": "descnet.data.hpatches",
    **dict.fromkeys(("ImageSequences", "ImageSequence", "read_sequence", "read_homography"), "descnet.data.sequences"),
    **dict.fromkeys(("SynthOptions", "synthetic_sequence", "write_synthetic_sequences"), "descnet.data.synth"),
    **dict.fromkeys(("PatchifyOptions", "PatchDatasetOptions", "BrownOptions", "Jitter", "sequence_patches",
                     "write_patch_dataset"), "descnet.data.patchify"),
    **dict.fromkeys(("PointPatchOptions", "write_point_patch_dataset"), "descnet.data.point_patches"),
    **dict.fromkeys(("Scene3DOptions", "render_scene_sequence", "correspond", "write_scene_sequences", "read_scene"),
                    "descnet.data.scene3d"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
