"""An on-disk cache of the training patches cut from image sequences.

Cutting a sequence into jittered HPatches-style patches (:func:`descnet.data.patchify.sequence_patches`)
takes from seconds to minutes per sequence; the result depends only on the sequence's files, the patchify
options, the seed and the model's input size. :func:`cached_sequence_patches` stores it once per such key,
so a second run, a resume or another model on the same data loads it in seconds, and any changed image,
homography file or parameter gives a new key (a rebuild).

Layout (``DESCNET_CACHE``, else ``$XDG_CACHE_HOME/descnet``, else ``~/.cache/descnet``)::

    CACHE/patches/<sequence name>-<key>.npz     one uint8 (N, size, size) array per image type
    CACHE/patches/<sequence name>-<key>.json    what the key was made of (files with sha256, options, seed)

Entries are written atomically; remove the folder to reclaim the space.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from descnet.data.download import file_digest
from descnet.io import atomic_path, user_cache_dir, write_json

__all__ = ["FORMAT", "cache_key", "cached_sequence_patches"]

#: bumped when the patch cutting or resizing code changes what it produces
FORMAT = 1


def cache_key(sequence, options, seed: int, size: int) -> tuple[str, dict[str, Any]]:
    """``(key, description)`` for a sequence's patches: the sha256 of every image file's bytes, the
    homographies' values, every option, the seed, the output size and :data:`FORMAT`. Returns a 20-hex-digit key and the JSON-ready description."""
    files = {f"image{k}": p for k, p in sorted(sequence.image_paths.items())}
    description = {
        "format": FORMAT,
        "sequence": sequence.name,
        "files": {name: {"name": Path(p).name, "sha256": file_digest(p)} for name, p in files.items()},
        "homographies": {str(k): np.asarray(h, dtype=np.float64).round(12).tolist()
                         for k, h in sorted(sequence.homographies.items())},
        "patchify": options.to_json(),
        "seed": int(seed),
        "size": int(size),
    }
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20], description


def cached_sequence_patches(sequence, options, seed: int, size: int,
                            resize: Callable[[np.ndarray, int], np.ndarray],
                            cache_dir: str | Path | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """``{type: uint8 (N, size, size)}`` of one sequence, from the cache or cut (and cached) now.

    Args:
        sequence: a :class:`descnet.data.sequences.ImageSequence`.
        options: :class:`descnet.data.patchify.PatchifyOptions`.
        seed: the patchify jitter seed.
        size: the model's input side; patches are stored after ``resize(stack, size)``.
        resize: uint8 ``(N, H, H)`` -> uint8 ``(N, size, size)``.
        cache_dir: default :func:`descnet.io.user_cache_dir` ``/ "patches"``.
        progress: print a line when cutting (the caller's progress bar counts sequences).
    """
    from descnet.data.patchify import sequence_patches

    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "patches"
    key, description = cache_key(sequence, options, seed, size)
    entry = folder / f"{sequence.name}-{key}.npz"
    if entry.is_file():
        try:
            with np.load(entry) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError):  # unreadable entry (e.g. a disk error): cut again
            pass
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(f"cutting patches of {sequence.name} (cached afterwards in {folder})")
    stacks = {name: resize(np.asarray(stack), size) for name, stack in sequence_patches(sequence, options, seed).items()}
    with atomic_path(entry) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **stacks)
    write_json(entry.with_suffix(".json"), description)
    return stacks
