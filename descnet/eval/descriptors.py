"""HPatches descriptors in memory and on disk: the official CSV layout and descnet's HDF5 cache.

In memory, :class:`HPatchesDescriptors` keeps one float32 ``(T, N_total, D)`` array: per image type, the
patches of all sequences, sequence after sequence; ``descs[seq][type]`` is a view ``(N, D)``.

The official layout (what ``hpatches-benchmark/python/hpatches_eval.py`` reads)::

    <dir>/<descriptor name>/<sequence>/<type>.csv    one row per patch in stack order, D comma-separated
                                                     numbers, no header; all 16 types of every sequence

descnet's HDF5 cache (written atomically, read in one go)::

    /sequences    (S,) utf-8 names       /offsets   int64 (S + 1,): rows of sequence s = offsets[s]:offsets[s+1]
    /types        (T,) utf-8 type names  /descriptors  float32 (T, N_total, D)
    attrs: descnet_hpatches_descriptors = 1, meta = JSON (model spec, weights, patch root, ...)
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descnet.data.hpatches import TYPES
from descnet.io import atomic_dir, atomic_path

__all__ = ["HPatchesDescriptors", "read_descriptor_csv", "read_descriptor_csvs", "write_descriptor_csvs",
           "read_descriptor_h5", "write_descriptor_h5", "H5_VERSION"]

H5_VERSION = 1


class HPatchesDescriptors(Mapping):
    """Descriptors of HPatches patches: a mapping sequence -> {type: float32 ``(N, D)`` view}.

    Args:
        sequences: sequence names, in row order.
        offsets: int ``(S + 1,)``; rows of sequence ``s`` are ``offsets[s]:offsets[s + 1]``.
        data: float32 ``(T, N_total, D)``, one slab per image type, or a mapping type -> ``(N_total, D)``
            (stacked into one array).
        types: the image type of each slab of ``data`` (default: the 16 types, or the mapping's keys).
        name: what the descriptors are (a model label, a file), used in error messages.

    Raises ``ValueError`` when shapes disagree or a descriptor is NaN or infinite.
    """

    def __init__(self, sequences: Sequence[str], offsets: Any, data: Any, types: Sequence[str] | None = None,
                 name: str = "descriptors") -> None:
        self.name = str(name)
        self.sequences = tuple(str(s) for s in sequences)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"{self.name}: duplicate sequence names")
        if self.offsets.shape != (len(self.sequences) + 1,) or self.offsets[0] != 0 \
                or (np.diff(self.offsets) < 0).any():
            raise ValueError(f"{self.name}: offsets must be non-decreasing, start at 0 and have one entry more "
                             f"than the {len(self.sequences)} sequences")
        if isinstance(data, Mapping):
            types = list(data) if types is None else list(types)
            shapes = {k: np.shape(data[k]) for k in types}
            if len(set(shapes.values())) > 1:
                raise ValueError(f"{self.name}: the image types have different shapes {shapes}")
            data = np.stack([np.asarray(data[k], dtype=np.float32) for k in types])
        data = np.ascontiguousarray(data, dtype=np.float32)
        self.types = tuple(TYPES if types is None else types)
        unknown = [k for k in self.types if k not in TYPES]
        if unknown or len(set(self.types)) != len(self.types):
            raise ValueError(f"{self.name}: bad image types {list(self.types)}")
        if data.ndim != 3 or data.shape[:2] != (len(self.types), self.offsets[-1]) or data.shape[2] < 1:
            raise ValueError(f"{self.name}: descriptors must be (types={len(self.types)}, "
                             f"N_total={self.offsets[-1]}, D), got {data.shape}")
        self.data = data
        self._position = {s: i for i, s in enumerate(self.sequences)}
        self._check_finite()

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, descs: Mapping[str, Mapping[str, Any]], sequences: Sequence[str] | None = None,
                     types: Sequence[str] | None = None, name: str = "descriptors") -> "HPatchesDescriptors":
        """Stack a ``{sequence: {type: (N, D) array}}`` dict (numpy or torch) into one container.

        ``sequences`` selects and orders the sequences (default: all, in the mapping's order); ``types``
        defaults to the types of the first sequence. Returns ``descs`` itself when it already is one and
        holds the same sequences in the same order.
        """
        names = list(descs) if sequences is None else list(sequences)
        if isinstance(descs, HPatchesDescriptors) and tuple(names) == descs.sequences and types is None:
            return descs
        missing = [s for s in names if s not in descs]
        if missing:
            raise ValueError(f"{name}: no descriptors for sequence(s) {', '.join(missing[:5])}")
        if not names:
            raise ValueError(f"{name}: no sequences")
        kinds = list(types) if types is not None else list(descs[names[0]])
        per_type: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        lengths = []
        for seq in names:
            entry = descs[seq]
            counts = {}
            for kind in kinds:
                if kind not in entry:
                    raise ValueError(f"{name}: sequence {seq} has no descriptors of type {kind}")
                arr = entry[kind]
                arr = arr.detach().cpu().numpy() if hasattr(arr, "detach") else np.asarray(arr)
                if arr.ndim != 2:
                    raise ValueError(f"{name}: {seq}/{kind} must be (N, D), got shape {arr.shape}")
                counts[kind] = len(arr)
                per_type[kind].append(arr)
            if len(set(counts.values())) > 1:
                raise ValueError(f"{name}: sequence {seq}: the types have different numbers of descriptors "
                                 f"({', '.join(f'{k}={v}' for k, v in counts.items())})")
            lengths.append(counts[kinds[0]])
        dims = {a.shape[1] for arrs in per_type.values() for a in arrs}
        if len(dims) > 1:
            raise ValueError(f"{name}: descriptors of different dimensions {sorted(dims)}")
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        data = np.stack([np.concatenate(per_type[k]) for k in kinds]).astype(np.float32, copy=False)
        return cls(names, offsets, data, types=kinds, name=name)

    # -- mapping -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[str]:
        return iter(self.sequences)

    def __contains__(self, seq: object) -> bool:
        return seq in self._position

    def __getitem__(self, seq: str) -> dict[str, np.ndarray]:
        if seq not in self._position:
            raise KeyError(f"{self.name}: no descriptors for sequence {seq!r}")
        i = self._position[seq]
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {kind: self.data[k, lo:hi] for k, kind in enumerate(self.types)}

    def __repr__(self) -> str:
        return (f"HPatchesDescriptors(name={self.name!r}, sequences={len(self)}, patches={self.offsets[-1]}, "
                f"dim={self.dim}, types={len(self.types)})")

    # -- properties and gathers ------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.data.shape[2]

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """type -> float32 ``(N_total, D)`` view."""
        return {kind: self.data[k] for k, kind in enumerate(self.types)}

    def type_index(self, kind: str) -> int:
        """Position of image type ``kind`` in :attr:`data` (an error names a missing type)."""
        if kind not in self.types:
            raise ValueError(f"{self.name}: no descriptors of image type {kind}")
        return self.types.index(kind)

    @property
    def lengths(self) -> dict[str, int]:
        """sequence -> number of patches N."""
        return dict(zip(self.sequences, np.diff(self.offsets).tolist()))

    def positions(self, sequences: np.ndarray, where: str = "") -> np.ndarray:
        """Sequence names -> int64 positions in :attr:`sequences`; an error names unknown ones and ``where``."""
        names = np.asarray(sequences, dtype=str).ravel()
        order = np.argsort(np.asarray(self.sequences, dtype=str))
        known = np.asarray(self.sequences, dtype=str)[order]
        at = np.minimum(np.searchsorted(known, names), len(known) - 1)
        bad = known[at] != names
        if bad.any():
            missing = sorted(set(names[bad].tolist()))
            src = f"{where} refers to" if where else "unknown"
            raise ValueError(f"{src} sequence(s) {', '.join(missing[:5])} that {self.name} does not have")
        return order[at].astype(np.int64)

    def rows(self, positions: np.ndarray, idx: np.ndarray, where: str = "") -> np.ndarray:
        """Global row numbers ``offsets[position] + idx``, checking ``0 <= idx < N`` of each sequence."""
        idx = np.asarray(idx, dtype=np.int64)
        n = self.offsets[positions + 1] - self.offsets[positions]
        bad = np.flatnonzero((idx < 0) | (idx >= n))
        if len(bad):
            b = bad[0]
            raise ValueError(f"{where or 'index'}: row {b}: patch {idx[b]} of sequence "
                             f"{self.sequences[positions[b]]} does not exist ({self.name} has {n[b]} patches there)")
        return self.offsets[positions] + idx

    def check_types(self, types: Sequence[str]) -> None:
        missing = [t for t in types if t not in self.types]
        if missing:
            raise ValueError(f"{self.name}: no descriptors of image type(s) {', '.join(missing)}")

    def _check_finite(self) -> None:
        if np.isfinite(self.data.sum(dtype=np.float64)):  # fast path: a NaN or inf makes the sum non-finite
            return
        for kind, arr in self.arrays.items():
            ok = np.isfinite(arr).all(axis=1)
            if not ok.all():
                row = int(np.flatnonzero(~ok)[0])
                s = int(np.searchsorted(self.offsets, row, side="right") - 1)
                raise ValueError(f"{self.name}: non-finite descriptor (NaN or inf) in sequence "
                                 f"{self.sequences[s]}, type {kind}, patch {row - self.offsets[s]}")


# ------------------------------------------------------------------------------------------------ CSV
def read_descriptor_csv(path: str | os.PathLike) -> np.ndarray:
    """One ``<type>.csv`` of the official layout -> float32 ``(N, D)``; errors name the file and the problem."""
    path = Path(path)
    try:
        with open(path) as f:
            first = f.readline()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such descriptor file") from None
    if not first.strip():
        raise ValueError(f"{path}: empty descriptor file")
    if "," not in first:
        found = next((repr(sep) for sep in (";", "\t", " ") if sep in first.strip()), None)
        if found:
            raise ValueError(f"{path}: the values are separated by {found}, the HPatches descriptor layout "
                             f"is comma-separated (one row of D numbers per patch)")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError as err:
        raise ValueError(f"{path}: not a comma-separated table of numbers ({err})") from None
    if table.shape[1] == 1:
        raise ValueError(f"{path}: one value per row; a descriptor file has D comma-separated values per "
                         f"row (wrong delimiter?)")
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        raise ValueError(f"{path}: line {int(np.flatnonzero(~finite)[0]) + 1} holds a NaN or infinite value")
    return table.astype(np.float32)


def read_descriptor_csvs(folder: str | os.PathLike, sequences: Sequence[str] | None = None,
                         types: Sequence[str] = TYPES, name: str | None = None,
                         progress: bool = False) -> HPatchesDescriptors:
    """Read ``<folder>/<sequence>/<type>.csv`` for ``sequences`` (default: every sub-folder).

    Checks that every file exists, is comma-separated and finite, that all files have the same
    dimension D and that the types of a sequence have the same number of rows.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such descriptor folder (expected <dir>/<name>/<sequence>/<type>.csv)")
    names = (sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
             if sequences is None else list(sequences))
    if not names:
        raise FileNotFoundError(f"{folder}: no sequence folders")
    per_type: dict[str, list[np.ndarray]] = {t: [] for t in types}
    lengths = []
    dim_source: tuple[int, Path] | None = None
    for seq in tqdm(names, desc=f"read {folder.name}", unit="seq", disable=not progress, leave=False):
        if not (folder / seq).is_dir():
            raise FileNotFoundError(f"{folder / seq}: missing descriptor folder of sequence {seq}")
        rows = None
        for kind in types:
            path = folder / seq / f"{kind}.csv"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing descriptors of image type {kind} of sequence {seq}")
            table = read_descriptor_csv(path)
            if dim_source is None:
                dim_source = (table.shape[1], path)
            elif table.shape[1] != dim_source[0]:
                raise ValueError(f"{path}: {table.shape[1]} values per row, but {dim_source[1]} has "
                                 f"{dim_source[0]}: all descriptor files must have the same dimension")
            if rows is None:
                rows = (len(table), path)
            elif len(table) != rows[0]:
                raise ValueError(f"{path}: {len(table)} rows, but {rows[1]} has {rows[0]}: the types of a "
                                 f"sequence must have one row per patch")
            per_type[kind].append(table)
        lengths.append(rows[0])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return HPatchesDescriptors(names, offsets, np.stack([np.concatenate(per_type[k]) for k in types]),
                               types=types, name=name or str(folder))


def write_descriptor_csvs(folder: str | os.PathLike, descs: HPatchesDescriptors, progress: bool = False) -> Path:
    """Write the official layout ``<folder>/<sequence>/<type>.csv`` atomically (the folder is replaced).

    Values are written with 9 significant digits, which round-trips float32 exactly.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        for seq in tqdm(descs.sequences, desc=f"export {folder.name}", unit="seq", disable=not progress,
                        leave=False):
            (tmp / seq).mkdir()
            for kind, arr in descs[seq].items():
                np.savetxt(tmp / seq / f"{kind}.csv", arr, fmt="%.9g", delimiter=",")
    return folder


# ----------------------------------------------------------------------------------------------- HDF5
def write_descriptor_h5(path: str | os.PathLike, descs: HPatchesDescriptors, meta: Mapping[str, Any] | None = None
                        ) -> Path:
    """Write the descnet HDF5 layout (module docstring) atomically; ``meta`` is stored as JSON."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["descnet_hpatches_descriptors"] = H5_VERSION
            f.attrs["meta"] = json.dumps(dict(meta or {}), sort_keys=True)
            f.create_dataset("sequences", data=np.asarray(descs.sequences, dtype=object),
                             dtype=h5py.string_dtype())
            f.create_dataset("offsets", data=descs.offsets)
            f.create_dataset("types", data=np.asarray(descs.types, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("descriptors", data=descs.data)
    return Path(path)


def read_descriptor_h5(path: str | os.PathLike, name: str | None = None
                       ) -> tuple[HPatchesDescriptors, dict[str, Any]]:
    """Read a file written by :func:`write_descriptor_h5`: ``(descriptors, meta)``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such descriptor file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("descnet_hpatches_descriptors") != H5_VERSION:
                raise ValueError(f"{path}: not a descnet HPatches descriptor file (version {H5_VERSION})")
            meta = json.loads(f.attrs.get("meta", "{}"))
            sequences = [s.decode() if isinstance(s, bytes) else str(s) for s in f["sequences"][...]]
            types = [s.decode() if isinstance(s, bytes) else str(s) for s in f["types"][...]]
            offsets = f["offsets"][...]
            data = f["descriptors"][...]
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: unreadable descnet HPatches descriptor file ({err})") from None
    return HPatchesDescriptors(sequences, offsets, data, types=types, name=name or str(path)), meta
