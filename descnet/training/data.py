"""Training and validation data for the trainer, from every supported source.

Every source reduces to the same two things:

* :class:`PatchPoints` -- uint8 patches ``(N, P, P)`` at the model's input size and the 3D point of each,
  int64 ``(N,)``: what :class:`descnet.sampling.PairSampler` draws pairs from;
* :class:`PairSet` -- a named verification set for FPR95: patches ``(K, P, P)`` and rows ``(i, j, is_match)``.

Sources (``data.source`` of the config):

* ``phototour`` -- a Brown subset (:class:`descnet.data.phototour.PhotoTour`): point = ``info.txt`` id.
* ``hpatches`` -- the train sequences of an HPatches split (``hpatches-release`` layout).
* ``patchset`` -- folders in the ``hpatches-release`` layout, e.g. built by ``descnet data patches`` (its
  output folder or the ``hpatches-release`` folder inside; ``data.root`` may list several).
* ``sequences`` -- image sequences with homographies (HPatches or Oxford layout, :mod:`descnet.data.sequences`;
  ``data.root`` may list several folders) cut into patches in memory by :func:`descnet.data.patchify.sequence_patches`
  with the ``data.patchify`` options: detector keypoints, 5x-scale regions, e/h/t affine jitter.
* ``synthetic`` -- ``data.count`` synthetic sequences (:mod:`descnet.data.synth`, ``data.synth`` options),
  cached in ``data.root`` when it is set, then cut into patches like ``sequences``.

``data.patchsets`` adds patch folders to any of these but ``phototour``: a mix, e.g. image sequences plus the
patches of 3D points (``descnet data patches --reconstruction``) and of rendered 3D scenes (``descnet data
synth --kind scene3d``). A folder in the ``hpatches-release`` layout adds its sequences to the others (names
must be unique; they may be held out like them); a Brown subset folder (``patchesNNNN.bmp`` + ``info.txt``,
e.g. ``OUT/points`` of ``data patches --reconstruction``) adds every patch with its ``info.txt`` 3D point,
for training only.

For the HPatches layout a 3D point is ``(sequence, row)`` and its patches are the chosen image types
(``data.types``; default all 16: ``ref``, ``e1..e5``, ``h1..h5``, ``t1..t5``). ``data.holdout`` sequences
are kept out of training and give the validation pairs. Patches are resized once, at load time, to the
model's input size with the inference path's anti-aliased resize (:func:`descnet.features.inference.as_patch_tensor`).
"""
from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from descnet.sampling import make_validation_pairs

__all__ = ["PatchPoints", "PairSet", "resize_patches", "points_from_sequences", "compact_pair_set",
           "load_training_data", "load_pair_set", "split_holdout", "sequence_loaders"]


@dataclass
class PatchPoints:
    """Training patches: uint8 ``patches`` ``(N, P, P)`` and int64 ``labels`` ``(N,)`` (3D point ids)."""

    patches: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.patches.dtype != np.uint8 or self.patches.ndim != 3 or self.patches.shape[1] != self.patches.shape[2]:
            raise ValueError(f"patches must be uint8 (N, P, P), got {self.patches.dtype} {self.patches.shape}")
        if self.labels.shape != (len(self.patches),):
            raise ValueError(f"{len(self.patches)} patches but labels of shape {self.labels.shape}")


@dataclass
class PairSet:
    """A verification set: uint8 ``patches`` ``(K, P, P)`` and int64 ``pairs`` ``(M, 3)`` ``(i, j, is_match)``."""

    name: str
    patches: np.ndarray
    pairs: np.ndarray


def resize_patches(patches: Any, size: int, chunk: int = 8192, progress: bool = False) -> np.ndarray:
    """uint8 ``(N, H, H)`` -> uint8 ``(N, size, size)`` (rounded), in chunks; unchanged when ``H == size``."""
    import torch

    from descnet.features.inference import as_patch_tensor

    patches = np.asarray(patches) if not hasattr(patches, "shape") else patches
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must be (N, H, H), got {tuple(patches.shape)}")
    if patches.shape[1] == size:
        return np.ascontiguousarray(patches, dtype=np.uint8)
    out = np.empty((len(patches), size, size), np.uint8)
    starts = range(0, len(patches), chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"resize to {size}x{size}", unit="chunk", leave=False)
    with torch.inference_mode():
        for start in starts:
            x = as_patch_tensor(np.asarray(patches[start:start + chunk]), size)
            out[start:start + chunk] = x[:, 0].mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def compact_pair_set(name: str, patches: Any, pairs: np.ndarray, size: int, max_pairs: int | None = None,
                     progress: bool = False) -> PairSet:
    """Keep only the patches the pairs use (resized to ``size``) and renumber the pairs."""
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 3:
        raise ValueError(f"{name}: pairs must be (M, 3) rows (i, j, is_match), got {pairs.shape}")
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = pairs[:max_pairs]
    used, inverse = np.unique(pairs[:, :2], return_inverse=True)
    subset = patches[used] if isinstance(patches, np.ndarray) else np.stack([patches[i] for i in used])
    return PairSet(name, resize_patches(subset, size, progress=progress),
                   np.c_[inverse.reshape(-1, 2), pairs[:, 2]].astype(np.int64))


def points_from_sequences(sequences: Mapping[str, Callable[..., Mapping[str, np.ndarray]]],
                          types: list[str] | None, size: int, progress: bool = False) -> PatchPoints:
    """HPatches-layout patches -> :class:`PatchPoints`; point = (sequence, row), patches = the ``types``.

    ``sequences``: name -> a loader ``load(types)`` returning {type -> uint8 ``(N_s, H, H)``} (at least the
    ``types`` asked for; all when ``None``), row ``i`` the same scene point in every type. Sequences are
    loaded and resized one at a time (memory stays at the output size).
    """
    blocks, labels, offset = [], [], 0
    items = sequences.items()
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="load sequences", unit="seq", leave=False)
    for name, load in items:
        stacks = load(types)
        chosen = list(stacks) if types is None else list(types)
        missing = [t for t in chosen if t not in stacks]
        if missing:
            raise ValueError(f"sequence {name!r} has no patches of type {', '.join(missing)} "
                             f"(it has {', '.join(stacks)})")
        rows = {len(stacks[t]) for t in chosen}
        if len(rows) != 1:
            raise ValueError(f"sequence {name!r}: the image types have different numbers of patches {sorted(rows)}")
        n = rows.pop()
        if n == 0:
            continue
        blocks.append(resize_patches(np.concatenate([np.asarray(stacks[t]) for t in chosen]), size))
        del stacks
        labels.append(np.tile(offset + np.arange(n, dtype=np.int64), len(chosen)))
        offset += n
    if not blocks:
        raise ValueError(f"no patches in the sequences {', '.join(sequences) or '(none)'}")
    return PatchPoints(np.concatenate(blocks), np.concatenate(labels))


def split_holdout(names: list[str], holdout: int | list[str], seed: int) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` sequence names: the listed names, or ``holdout`` names drawn with ``seed``."""
    names = sorted(names)
    if isinstance(holdout, list):
        unknown = sorted(set(holdout) - set(names))
        if unknown:
            raise ValueError(f"data.holdout names unknown sequences: {', '.join(unknown)} "
                             f"(known: {', '.join(names)})")
        held = [n for n in names if n in holdout]
    else:
        if holdout and holdout >= len(names):
            raise ValueError(f"data.holdout={holdout} leaves no training sequence ({len(names)} in all)")
        rng = np.random.default_rng([seed, 0x401d])
        held = sorted(np.asarray(names)[rng.permutation(len(names))[:holdout]].tolist())
    train = [n for n in names if n not in held]
    if not train:
        raise ValueError(f"data.holdout leaves no training sequence (held out: {', '.join(held)})")
    return train, held


def _roots(cfg: Mapping[str, Any]) -> list[Path]:
    root = cfg.get("root")
    if root is None:
        raise ValueError(f"data.root is not set: give the dataset folder for data.source={cfg['source']} "
                         f"(e.g. --set data.root=DIR)")
    return [Path(r) for r in (root if isinstance(root, list) else [root])]


def _patchify_options(options: Mapping[str, Any]):
    from descnet.data.patchify import Jitter, PatchifyOptions

    options = dict(options)
    if "jitter" in options:
        options["jitter"] = {level: Jitter(**dict(j)) for level, j in dict(options["jitter"]).items()}
    if "detectors" in options:
        options["detectors"] = tuple(options["detectors"])
    try:
        return PatchifyOptions(**options)
    except TypeError as err:
        raise ValueError(f"data.patchify: {err}") from None


def _synthetic_root(cfg: Mapping[str, Any], seed: int, scratch: Path, progress: bool) -> Path:
    """The synthetic sequences: generated into ``data.root`` (reused when it already holds them with the
    same seed, count and options) or into a scratch folder."""
    import dataclasses

    from descnet.data.synth import MARKER, SynthOptions, write_synthetic_sequences
    from descnet.io import read_json

    options = dict(cfg["synth"])
    if "size" in options:
        options["size"] = tuple(options["size"])
    try:
        synth = SynthOptions(**options)
    except TypeError as err:
        raise ValueError(f"data.synth: {err}") from None
    root = Path(cfg["root"]) if cfg.get("root") is not None else scratch / "synthetic"
    if isinstance(cfg.get("root"), list):
        raise ValueError("data.root of the synthetic source is one folder (where the sequences are cached)")
    if (root / MARKER).is_file():
        info = read_json(root / MARKER)
        wanted = {"seed": seed, "count": cfg["count"], "options": json.loads(json.dumps(dataclasses.asdict(synth)))}
        found = {k: info.get(k) for k in wanted}
        if found != wanted:
            raise ValueError(f"{root}: holds other synthetic sequences ({MARKER}: seed {found['seed']}, count "
                             f"{found['count']}); remove it or choose another data.root")
        return root
    write_synthetic_sequences(root, cfg["count"], seed=seed, options=synth, progress=progress)
    return root


def sequence_loaders(cfg: Mapping[str, Any], seed: int, scratch: Path, size: int, progress: bool = False
                     ) -> dict[str, Callable[..., dict[str, np.ndarray]]]:
    """name -> ``load(types=None)`` of its HPatches-layout patches, for the ``hpatches``, ``patchset``,
    ``sequences`` and ``synthetic`` sources (restricted to ``data.sequences`` when given).

    Image sequences are cut through the patch cache (:mod:`descnet.training.patch_cache`) and their patches
    come back already ``size`` x ``size`` (the model's input side)."""
    source = cfg["source"]
    loaders: dict[str, Callable[..., dict[str, np.ndarray]]] = {}

    def add(name: str, load: Callable[..., dict[str, np.ndarray]], where: Path) -> None:
        if name in loaders:
            raise ValueError(f"sequence {name!r} appears twice (again in {where}); sequence names must be unique")
        loaders[name] = load

    def add_patchset(root: Path, hpatches_split: str | None = None) -> None:
        from descnet.data.hpatches import TYPES, HPatches

        if (root / "hpatches-release").is_dir():  # the output folder of `descnet data patches`
            root = root / "hpatches-release"
        dataset = HPatches(root, types=TYPES)
        names = dataset.split(hpatches_split).train if hpatches_split else dataset.sequences
        for name in names:
            add(name, functools.partial(dataset.load_sequence, name), root)

    if source in ("hpatches", "patchset"):
        for root in _roots(cfg):
            add_patchset(root, cfg["split"] if source == "hpatches" else None)
    else:  # image sequences cut into patches in memory
        from descnet.data.sequences import ImageSequences

        options = _patchify_options(cfg["patchify"])
        roots = [_synthetic_root(cfg, seed, scratch, progress)] if source == "synthetic" else _roots(cfg)
        for root in roots:
            for sequence in ImageSequences(root):
                add(sequence.name, functools.partial(_cut_sequence, sequence, options, seed, size, progress), root)
    for root in _patchsets(cfg)[0]:
        add_patchset(root)
    if cfg.get("sequences"):
        unknown = sorted(set(cfg["sequences"]) - set(loaders))
        if unknown:
            raise ValueError(f"data.sequences names unknown sequences: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(loaders))})")
        loaders = {n: loaders[n] for n in cfg["sequences"]}
    return loaders


def _patchsets(cfg: Mapping[str, Any]) -> tuple[list[Path], list[Path]]:
    """``data.patchsets`` split into ``(hpatches-release folders, Brown subset folders)``; a Brown subset is a
    folder holding ``info.txt``."""
    folders = [Path(r) for r in cfg.get("patchsets") or []]
    brown = [f for f in folders if (f / "info.txt").is_file()]
    return [f for f in folders if f not in brown], brown


def _subset_points(subset, size: int, progress: bool = False) -> PatchPoints:
    """A Brown subset (:class:`descnet.data.phototour.PhotoTour`) -> its patches resized to ``size`` and the
    ``info.txt`` 3D point of each."""
    if subset.labels is None:
        raise ValueError(f"{subset.folder}: has no info.txt, so no 3D point labels to train with")
    return PatchPoints(resize_patches(subset.patches, size, progress=progress),
                       np.asarray(subset.labels, dtype=np.int64))


def _join_points(parts: list[PatchPoints]) -> PatchPoints:
    """One :class:`PatchPoints` from several, their 3D point ids kept apart."""
    labels, offset = [], 0
    for part in parts:
        _, ids = np.unique(part.labels, return_inverse=True)
        labels.append(offset + ids.astype(np.int64))
        offset += int(ids.max()) + 1
    return PatchPoints(np.concatenate([p.patches for p in parts]), np.concatenate(labels))


def _cut_sequence(sequence, options, seed: int, size: int, progress: bool,
                  types: list[str] | None = None) -> dict[str, np.ndarray]:
    # all types (the jitter draws depend on all of them)
    from descnet.training.patch_cache import cached_sequence_patches

    return cached_sequence_patches(sequence, options, seed, size, resize_patches, progress=progress)


def _phototour(cfg: Mapping[str, Any], name: str | None = None, progress: bool = False):
    from descnet.data.phototour import PhotoTour

    roots = _roots(cfg)
    if len(roots) != 1:
        raise ValueError("data.root of the phototour source is one folder (holding liberty/, notredame/, ...)")
    return PhotoTour(roots[0], name or cfg["name"], progress=progress)


MATCHING_TYPES = ("ref", "e1", "e2", "e3", "e4", "e5", "h1", "h2", "h3", "h4", "h5", "t1", "t2", "t3", "t4", "t5")


def load_training_data(cfg: Mapping[str, Any], size: int, seed: int = 0, num_pairs: int = 20000,
                       matching: bool = False, progress: bool = False
                       ) -> tuple[PatchPoints, list[PairSet], dict[str, dict[str, np.ndarray]]]:
    """The ``data`` section of a config -> ``(training points, held-out pair sets, held-out sequences)``.

    The held-out sequences (name -> type -> uint8 ``(N, size, size)``, for the HPatches matching task) are
    returned only with ``matching``; they must have the 16 HPatches types. Brown has no held-out data here
    (its validation pairs come from ``validation.pairs``).
    """
    if cfg["source"] == "phototour":
        if matching:
            raise ValueError("validation.matching needs held-out sequences; data.source phototour has none")
        return _subset_points(_phototour(cfg, progress=progress), size, progress), [], {}
    with tempfile.TemporaryDirectory(prefix="descnet-data-") as scratch:
        loaders = sequence_loaders(cfg, seed, Path(scratch), size, progress)
        train, held = split_holdout(list(loaders), cfg["holdout"], seed)
        if matching and not held:
            raise ValueError("validation.matching needs held-out sequences: set data.holdout")
        points = points_from_sequences({n: loaders[n] for n in train}, cfg.get("types"), size, progress)
        brown = _patchsets(cfg)[1]
        if brown:
            from descnet.data.phototour import PhotoTour

            points = _join_points([points] + [_subset_points(PhotoTour(f.parent, f.name, progress=progress), size,
                                                             progress) for f in brown])
        pair_sets, sequences = [], {}
        if held:
            stacks = {n: loaders[n](None if matching else cfg.get("types")) for n in held}
            held_points = points_from_sequences({n: (lambda types, v=v: v) for n, v in stacks.items()},
                                                cfg.get("types"), size)
            pairs = make_validation_pairs(held_points.labels, num_pairs, seed)
            pair_sets.append(compact_pair_set("held-out", held_points.patches, pairs, size))
            if matching:
                for name, types in stacks.items():
                    missing = [t for t in MATCHING_TYPES if t not in types]
                    if missing:
                        raise ValueError(f"validation.matching: held-out sequence {name!r} lacks the HPatches "
                                         f"types {', '.join(missing)}")
                    sequences[name] = {t: resize_patches(types[t], size) for t in MATCHING_TYPES}
    return points, pair_sets, sequences


def load_pair_set(spec: Mapping[str, Any], size: int, max_pairs: int | None = None, root: Any = None,
                  progress: bool = False) -> PairSet:
    """One entry of ``validation.pairs`` -> a :class:`PairSet`.

    ``{source: phototour, name: notredame}`` (optionally ``root``, default ``root`` -- the training
    ``data.root`` -- and ``pairs_file``): the subset's m50 pairs, e.g. the 100k pairs of the Brown protocol.
    """
    spec = dict(spec)
    source = spec.get("source", "phototour")
    if source != "phototour":
        raise ValueError(f"validation.pairs: source must be phototour (held-out sequences of the other sources "
                         f"come from data.holdout), got {source!r}")
    unknown = sorted(set(spec) - {"source", "root", "name", "pairs_file"})
    if unknown or "name" not in spec:
        raise ValueError(f"validation.pairs entry {spec}: expected keys name and optionally root, source, "
                         f"pairs_file{'; unknown: ' + ', '.join(unknown) if unknown else ''}")
    root = spec.get("root", root)
    if root is None or isinstance(root, list):
        raise ValueError(f"validation.pairs entry {spec}: give its root (the folder holding {spec['name']}/)")
    from descnet.data.phototour import DEFAULT_PAIRS, PhotoTour

    subset = PhotoTour(root, spec["name"], pairs_file=spec.get("pairs_file", DEFAULT_PAIRS), progress=progress)
    return compact_pair_set(str(spec["name"]), subset.patches, subset.matches, size, max_pairs, progress)
