"""UBC Phototour ("Brown") patch datasets: liberty, notredame, yosemite.

On-disk layout of one subset ``<root>/<name>/`` (as published by Winder and Brown)::

    patches0000.bmp ...   1024x1024 8-bit grayscale BMP mosaics, each a 16x16 grid of 64x64 patches,
                          row-major: patch id = 256 * file + 16 * row + col; the last mosaic may be partly
                          empty (black).
    info.txt              one line per patch, "point_id unused": column 0 = the 3D point id. Patches of one
                          point are consecutive. Number of patches = number of lines.
    interest.txt          one line per patch: reference image id, x, y, orientation, scale (log2 units).
    m50_N_N_0.txt         N test pairs, one per line: patch1 point1 unused patch2 point2 unused unused;
                          a pair matches when point1 == point2 (m50_100000_100000_0.txt: 50k + 50k).

torchvision's ``PhotoTour`` keeps ``<root>/<name>.pt`` instead: ``torch.save((patches, labels, matches))``
with uint8 ``(N, 64, 64)`` patches, int64 ``(N,)`` point ids and int64 ``(M, 3)`` rows
``(patch1, patch2, is_match)`` from ``m50_100000_100000_0.txt``. Either is converted once to a compact
cache ``<root>/<name>.descnet.h5`` (HDF5, written atomically) that reloads in milliseconds: the patches are
one contiguous uint8 dataset, memory-mapped by :class:`PhotoTour`. The cache is keyed on the *content* of
every source file (each mosaic, ``info.txt``, each pairs file, or the ``.pt``): their sha256 digests, hashed
once and kept with each file's size, modification and change times in ``<name>.descnet.h5.sources.json``
beside the cache, hashed again when one of those changes, and always with ``verify_cache=True``
(``descnet eval brown --verify-cache``; :func:`descnet.data.download.cached_digests`).

Everything that knows this format lives here: the reader, :func:`read_mosaic` (used by other readers of
mosaics) and :func:`write_phototour` (used by tests and the patch-set builder).
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from descnet.io import atomic_dir, atomic_path

__all__ = [
    "PhotoTour", "SUBSETS", "SUBSET_SIZES", "PIXEL_MEAN", "PIXEL_STD", "DEFAULT_PAIRS", "PATCH_SIZE",
    "PATCHES_PER_MOSAIC", "mosaic_name", "read_mosaic", "split_mosaic", "make_mosaic", "read_info",
    "read_interest", "read_pairs", "write_phototour",
]

SUBSETS = ("liberty", "notredame", "yosemite")
#: Number of patches of each published subset (lines of its info.txt).
SUBSET_SIZES = {"liberty": 450_092, "notredame": 468_159, "yosemite": 633_587}
#: Pixel statistics of each subset, pixels scaled to [0, 1] (as used by torchvision and HardNet).
PIXEL_MEAN = {"liberty": 0.4437, "notredame": 0.4854, "yosemite": 0.4844}
PIXEL_STD = {"liberty": 0.2019, "notredame": 0.1864, "yosemite": 0.1818}
#: The 100k test pairs every FPR95 table uses.
DEFAULT_PAIRS = "m50_100000_100000_0.txt"

PATCH_SIZE = 64
GRID = 16  # patches per mosaic row and column
PATCHES_PER_MOSAIC = GRID * GRID
MOSAIC_SIZE = GRID * PATCH_SIZE
CACHE_SUFFIX = ".descnet.h5"
CACHE_VERSION = 2  # 2: keyed on the source files' sha256 (1: on their sizes and modification times)
_MOSAIC_RE = re.compile(r"^patches(\d{4,})\.bmp$")
_PAIRS_RE = re.compile(r"^m50_\d+_\d+_\d+\.txt$")


# ----------------------------------------------------------------------------------------- format pieces
def mosaic_name(index: int) -> str:
    """File name of mosaic ``index``: ``patches0000.bmp``, ``patches0001.bmp``, ..."""
    return f"patches{index:04d}.bmp"


def split_mosaic(image: np.ndarray) -> np.ndarray:
    """Cut a ``(1024, 1024)`` mosaic into its ``(256, 64, 64)`` patches, row-major (id = 16 * row + col)."""
    if image.shape != (MOSAIC_SIZE, MOSAIC_SIZE):
        raise ValueError(f"a Brown mosaic is {MOSAIC_SIZE}x{MOSAIC_SIZE}, got {image.shape}")
    grid = image.reshape(GRID, PATCH_SIZE, GRID, PATCH_SIZE)  # (row, y, col, x)
    return np.ascontiguousarray(grid.transpose(0, 2, 1, 3).reshape(PATCHES_PER_MOSAIC, PATCH_SIZE, PATCH_SIZE))


def make_mosaic(patches: np.ndarray) -> np.ndarray:
    """Inverse of :func:`split_mosaic`: up to 256 uint8 ``(K, 64, 64)`` patches -> ``(1024, 1024)``, rest black."""
    k = len(patches)
    if k > PATCHES_PER_MOSAIC or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE):
        raise ValueError(f"a mosaic holds up to {PATCHES_PER_MOSAIC} patches of 64x64, got {patches.shape}")
    full = np.zeros((PATCHES_PER_MOSAIC, PATCH_SIZE, PATCH_SIZE), np.uint8)
    full[:k] = patches
    grid = full.reshape(GRID, GRID, PATCH_SIZE, PATCH_SIZE).transpose(0, 2, 1, 3)  # (row, y, col, x)
    return np.ascontiguousarray(grid.reshape(MOSAIC_SIZE, MOSAIC_SIZE))


def read_mosaic(path: str | os.PathLike) -> np.ndarray:
    """Read one ``patchesNNNN.bmp`` mosaic: returns its uint8 ``(256, 64, 64)`` patches (empty cells are 0)."""
    from descnet.data.images import read_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mosaic")
    image = read_image(path, gray=True)
    if image.dtype != np.uint8 or image.shape != (MOSAIC_SIZE, MOSAIC_SIZE):
        raise ValueError(f"{path}: a Brown mosaic is {MOSAIC_SIZE}x{MOSAIC_SIZE} 8-bit pixels, got "
                         f"{image.shape[1]}x{image.shape[0]} {image.dtype}")
    return split_mosaic(image)


def read_info(path: str | os.PathLike) -> np.ndarray:
    """``info.txt`` -> int64 ``(N,)`` 3D point id of each patch (column 0; one line per patch)."""
    path = Path(path)
    columns = _read_int_table(path, "info.txt")
    return np.ascontiguousarray(columns[:, 0])


def read_interest(path: str | os.PathLike) -> np.ndarray:
    """``interest.txt`` -> float64 ``(N, K)``: reference image id, x, y, orientation, scale per patch."""
    path = Path(path)
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except ValueError as err:
        raise ValueError(f"{path}: not a Brown interest.txt ({err})") from None
    return table


def read_pairs(path: str | os.PathLike) -> np.ndarray:
    """An ``m50_*.txt`` pair file -> int64 ``(M, 3)`` rows ``(patch1, patch2, is_match)``.

    Each line is ``patch1 point1 unused patch2 point2 unused unused``; ``is_match = point1 == point2``
    (the rows torchvision's ``PhotoTour`` builds).
    """
    path = Path(path)
    table = _read_int_table(path, "m50 pair file", min_columns=5)
    return np.stack([table[:, 0], table[:, 3], (table[:, 1] == table[:, 4]).astype(np.int64)], axis=1)


def _read_int_table(path: Path, what: str, min_columns: int = 1) -> np.ndarray:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty files; we raise below
            table = np.loadtxt(path, dtype=np.int64, ndmin=2, comments=None)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except ValueError as err:
        raise ValueError(f"{path}: not a Brown {what}: {err}") from None
    if table.shape[0] == 0:
        raise ValueError(f"{path}: the {what} is empty")
    if table.shape[1] < min_columns:
        raise ValueError(f"{path}: a Brown {what} has at least {min_columns} columns per line, "
                         f"found {table.shape[1]}")
    return table


# ----------------------------------------------------------------------------------------------- writer
def write_phototour(root: str | os.PathLike, name: str, patches: np.ndarray, labels: np.ndarray,
                    pairs: np.ndarray, *, interest: np.ndarray | None = None,
                    pairs_name: str | None = None) -> Path:
    """Write a patch set in the original Brown layout under ``<root>/<name>/`` (atomically) and return it.

    Args:
        patches: uint8 ``(N, 64, 64)``; written as ``patches0000.bmp``... (the last mosaic padded black).
        labels: int ``(N,)`` 3D point ids -> ``info.txt`` lines ``"point_id 0"``.
        pairs: int ``(M, 2)`` patch-index pairs, or ``(M, 3)`` ``(patch1, patch2, is_match)`` whose
            ``is_match`` must agree with ``labels`` -> ``m50_M_M_0.txt`` (or ``pairs_name``).
        interest: optional ``(N, 5)`` interest points for ``interest.txt``; default rows of zeros.
    """
    from descnet.data.images import write_image

    patches = np.asarray(patches)
    labels = np.asarray(labels)
    pairs = np.asarray(pairs)
    if patches.dtype != np.uint8 or patches.ndim != 3 or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE):
        raise ValueError(f"patches must be uint8 (N, 64, 64), got {patches.dtype} {patches.shape}")
    n = len(patches)
    if n == 0:
        raise ValueError("patches is empty: nothing to write")
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer ({n},), got {labels.dtype} {labels.shape}")
    if pairs.ndim != 2 or pairs.shape[1] not in (2, 3) or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be integer (M, 2) or (M, 3), got {pairs.dtype} {pairs.shape}")
    if pairs.size and (pairs[:, :2].min() < 0 or pairs[:, :2].max() >= n):
        raise ValueError(f"pairs refer to patches outside 0..{n - 1}")
    point1, point2 = labels[pairs[:, 0]], labels[pairs[:, 1]]
    if pairs.shape[1] == 3 and not np.array_equal(pairs[:, 2] != 0, point1 == point2):
        raise ValueError("pairs[:, 2] (is_match) disagrees with labels: the m50 format encodes a match as "
                         "equal point ids")
    if interest is None:
        interest = np.zeros((n, 5))
    interest = np.asarray(interest, dtype=np.float64)
    if interest.ndim != 2 or len(interest) != n:
        raise ValueError(f"interest must be ({n}, K), got {interest.shape}")
    pairs_name = pairs_name or f"m50_{len(pairs)}_{len(pairs)}_0.txt"
    if not _PAIRS_RE.match(pairs_name):
        raise ValueError(f"pairs_name must look like m50_N_N_0.txt, got {pairs_name!r}")

    target = Path(root) / name
    with atomic_dir(target) as tmp:
        for index, start in enumerate(range(0, n, PATCHES_PER_MOSAIC)):
            write_image(tmp / mosaic_name(index), make_mosaic(patches[start:start + PATCHES_PER_MOSAIC]))
        (tmp / "info.txt").write_text("".join(f"{int(p)} 0\n" for p in labels))
        (tmp / "interest.txt").write_text(
            "".join(" ".join(_fmt(v) for v in row) + "\n" for row in interest))
        (tmp / pairs_name).write_text("".join(
            f"{a} {pa} 0 {b} {pb} 0 0\n" for a, pa, b, pb in zip(pairs[:, 0].tolist(), point1.tolist(),
                                                                 pairs[:, 1].tolist(), point2.tolist())))
    return target


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ----------------------------------------------------------------------------------------------- reader
class PhotoTour:
    """One Brown subset: its patches, 3D point labels and test pairs.

    Reads ``<root>/<name>/`` in the original layout (see the module docstring) or torchvision's
    ``<root>/<name>.pt``, converts it once to ``<cache_dir or root>/<name>.descnet.h5`` and reloads that
    cache afterwards (rebuilt automatically when the content of a source file changes: module docstring).

    Args:
        root: folder holding ``<name>/`` (or ``<name>.pt``), e.g. what ``descnet data download brown
            --root ROOT`` fills.
        name: ``liberty``, ``notredame``, ``yosemite`` (or any subset written by :func:`write_phototour`).
        pairs_file: the ``m50_*`` file behind :attr:`matches`.
        cache: write and reuse the HDF5 cache; ``False`` parses the source every time and keeps it in memory.
        cache_dir: where the cache goes (default ``root``; use it when ``root`` is read-only).
        in_memory: load the patches into RAM instead of memory-mapping the cache.
        verify_cache: hash every source file again instead of trusting the digests recorded with unchanged
            sizes and times.
        progress: show a progress bar while converting.

    Attributes:
        patches: uint8 ``(N, 64, 64)``, a copy-on-write memory map of the cache (or an in-memory array).
        labels: int64 ``(N,)`` 3D point ids, or ``None`` when only the mosaics exist (no ``info.txt``).
        mean, std: the published pixel statistics of the subset (pixels in [0, 1]), ``None`` if unknown.

    Without ``info.txt`` (e.g. a folder holding only the first mosaics) the number of patches is the
    published subset size when all mosaics are present, else 256 per mosaic.
    """

    def __init__(self, root: str | os.PathLike, name: str, *, pairs_file: str = DEFAULT_PAIRS,
                 cache: bool = True, cache_dir: str | os.PathLike | None = None, in_memory: bool = False,
                 progress: bool = True, verify_cache: bool = False) -> None:
        self.root = Path(root)
        self.name = str(name)
        self.folder = self.root / self.name
        self.pairs_file = pairs_file
        self.mean = PIXEL_MEAN.get(self.name)
        self.std = PIXEL_STD.get(self.name)
        self.cache_path = (Path(cache_dir) if cache_dir is not None else self.root) / f"{self.name}{CACHE_SUFFIX}"
        self._cached_pairs: set[str] = set()
        self._matches: np.ndarray | None = None
        self._pairs_in_memory: dict[str, np.ndarray] = {}
        self.patches: np.ndarray
        self.labels: np.ndarray | None = None
        self.uncovered: str | None = None  # the source holds patches no info.txt label covers (reported)

        source = self._find_source()
        signature = self._signature(source, verify_cache) if source and cache else None
        if cache and self._cache_is_valid(signature):
            self._load_cache(in_memory)
            self.source = "cache"
        elif source is None:
            raise FileNotFoundError(self._missing_message())
        else:
            self.source = source
            if cache:
                self._write_cache(source, signature, progress)
                self._load_cache(in_memory)
            else:
                self.patches, self.labels, self._pairs_in_memory = self._read_source(source, progress)
        if self.uncovered:  # every time the set is opened, not only when the cache is built
            warnings.warn(self.uncovered, UserWarning, stacklevel=2)

    # -- public API ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: int) -> np.ndarray:
        """Patch ``index`` as uint8 ``(64, 64)``."""
        return self.patches[index]

    def __repr__(self) -> str:
        labels = "no labels" if self.labels is None else f"{len(np.unique(self.labels))} points"
        return f"PhotoTour(name={self.name!r}, patches={len(self)}, {labels}, root='{self.root}')"

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def require_labels(self) -> np.ndarray:
        """:attr:`labels`, or a clear error when this copy of the subset has none."""
        if self.labels is None:
            raise ValueError(f"{self.folder}: no info.txt, so the patches of {self.name!r} have no 3D point "
                             f"labels (only the mosaics are present); download the full subset with "
                             f"`descnet data download brown --root {self.root} --subset {self.name}`")
        return self.labels

    @property
    def matches(self) -> np.ndarray:
        """int64 ``(M, 3)`` rows ``(patch1, patch2, is_match)`` of :attr:`pairs_file`."""
        if self._matches is None:
            self._matches = self.read_pairs(self.pairs_file)
        return self._matches

    def available_pairs(self) -> list[str]:
        """Names of the ``m50_*`` pair files this subset has (in the cache or the folder)."""
        names = set(self._cached_pairs) | set(self._pairs_in_memory)
        if self.folder.is_dir():
            names |= {p.name for p in self.folder.iterdir() if _PAIRS_RE.match(p.name)}
        return sorted(names)

    def read_pairs(self, filename: str) -> np.ndarray:
        """Any ``m50_*.txt`` pair file of this subset -> int64 ``(M, 3)`` rows ``(patch1, patch2, is_match)``."""
        if Path(filename).name != filename:
            raise ValueError(f"pairs file must be a file name inside {self.folder}, got {filename!r}")
        if filename in self._pairs_in_memory:
            return self._pairs_in_memory[filename]
        if filename in self._cached_pairs:
            import h5py

            with h5py.File(self.cache_path, "r") as f:
                return f["pairs"][filename][...]
        path = self.folder / filename
        if not path.is_file():
            available = self.available_pairs()
            if self.labels is None and not available:
                raise FileNotFoundError(f"{path}: no such file; this copy of {self.name!r} has only the patch "
                                        f"mosaics (no info.txt or m50_* pair files), so it has no labels or pairs")
            hint = f"available: {', '.join(available)}" if available else "this subset has no m50_* files"
            raise FileNotFoundError(f"{path}: no such pairs file ({hint})")
        pairs = read_pairs(path)
        self._check_pairs(pairs, path)
        return pairs

    def read_interest(self) -> np.ndarray:
        """``interest.txt`` of this subset as float64 ``(N, 5)`` (not cached: needs the original folder)."""
        return read_interest(self.folder / "interest.txt")

    # -- sources ------------------------------------------------------------------------------------
    def _find_source(self) -> str | None:
        if self._mosaics():
            return "mosaics"
        if (self.root / f"{self.name}.pt").is_file():
            return "torchvision"
        return None

    def _mosaics(self) -> list[Path]:
        """The mosaics ``patches0000.bmp``... in order; raises when one in the middle is missing."""
        if not self.folder.is_dir():
            return []
        found = {}
        for path in self.folder.iterdir():
            match = _MOSAIC_RE.match(path.name)
            if match:
                found[int(match.group(1))] = path
        for index in range(len(found)):
            if index not in found:
                raise FileNotFoundError(f"{self.folder / mosaic_name(index)}: missing mosaic (the folder has "
                                        f"{len(found)} patches*.bmp files up to {mosaic_name(max(found))})")
        return [found[i] for i in range(len(found))]

    def _missing_message(self) -> str:
        hint = f"download it with `descnet data download brown --root {self.root} --subset {self.name}`"
        if self.folder.is_dir():
            return (f"{self.folder}: no Brown mosaics (patches0000.bmp, ...) in this folder and no "
                    f"{self.root / (self.name + '.pt')}; {hint}")
        return (f"no Brown subset {self.name!r} under {self.root}: expected the folder {self.folder} "
                f"(patches0000.bmp, info.txt, m50_*.txt) or torchvision's {self.root / (self.name + '.pt')}; {hint}")

    def _signature(self, source: str, verify: bool = False) -> str:
        """The sha256 of every source file (each mosaic, info.txt, each pairs file; or the ``.pt``): a source
        file whose content changed invalidates the cache (module docstring)."""
        from descnet.data.download import cached_digests

        if source == "torchvision":
            files = {"pt": self.root / f"{self.name}.pt"}
        else:
            files = {f"mosaics/{p.name}": p for p in self._mosaics()}
            files["info"] = self.folder / "info.txt"
            files.update({f"pairs/{p.name}": p for p in sorted(self.folder.iterdir()) if _PAIRS_RE.match(p.name)})
        book = self.cache_path.with_name(self.cache_path.name + ".sources.json")
        return json.dumps({"source": source, "sha256": cached_digests(files, book, verify)}, sort_keys=True)

    def _read_source(self, source: str, progress: bool) -> tuple[np.ndarray, np.ndarray | None,
                                                                  dict[str, np.ndarray]]:
        """Patches, labels and pair files of the source, all in memory (the ``cache=False`` path)."""
        if source == "torchvision":
            return self._read_torchvision()
        count, labels = self._count_and_labels()
        patches = np.empty((count, PATCH_SIZE, PATCH_SIZE), np.uint8)
        for start, block in self._iter_patches(count, progress):
            patches[start:start + len(block)] = block
        return patches, labels, self._read_all_pairs(count)

    def _count_and_labels(self) -> tuple[int, np.ndarray | None]:
        mosaics = self._mosaics()
        capacity = len(mosaics) * PATCHES_PER_MOSAIC
        info = self.folder / "info.txt"
        if info.is_file():
            labels = read_info(info)
            if len(labels) > capacity:
                needed = math.ceil(len(labels) / PATCHES_PER_MOSAIC)
                raise ValueError(f"{info} lists {len(labels)} patches but {self.folder} holds only "
                                 f"{len(mosaics)} mosaics ({capacity} patches): {needed - len(mosaics)} "
                                 f"mosaic(s) missing from {mosaic_name(len(mosaics))} on")
            used = math.ceil(len(labels) / PATCHES_PER_MOSAIC)
            if used < len(mosaics):
                extra = len(mosaics) - used
                self.uncovered = (f"{info}: labels {len(labels)} patches, but {self.folder} holds {extra} more "
                                  f"mosaic(s) ({mosaic_name(used)} to {mosaic_name(len(mosaics) - 1)}, up to "
                                  f"{extra * PATCHES_PER_MOSAIC} patches) that no label covers: they are ignored")
            return len(labels), labels
        published = SUBSET_SIZES.get(self.name)
        if published is not None and len(mosaics) == math.ceil(published / PATCHES_PER_MOSAIC):
            return published, None
        return capacity, None

    def _iter_patches(self, count: int, progress: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, uint8 (K, 64, 64))`` blocks, one per mosaic, covering patches ``0..count-1``."""
        from tqdm.auto import tqdm

        mosaics = self._mosaics()[:math.ceil(count / PATCHES_PER_MOSAIC)]
        for index, path in enumerate(tqdm(mosaics, desc=f"{self.name} mosaics", unit="bmp",
                                          disable=not progress, leave=False)):
            start = index * PATCHES_PER_MOSAIC
            yield start, read_mosaic(path)[:count - start]

    def _read_all_pairs(self, count: int) -> dict[str, np.ndarray]:
        """Every valid ``m50_*`` file of the folder; a broken one is left out (reading it raises later)."""
        out = {}
        for path in sorted(self.folder.glob("m50_*.txt")):
            if _PAIRS_RE.match(path.name):
                try:
                    pairs = read_pairs(path)
                    self._check_pairs(pairs, path, count)
                except ValueError:
                    continue
                out[path.name] = pairs
        return out

    def _check_pairs(self, pairs: np.ndarray, path: Path, count: int | None = None) -> None:
        count = len(self.patches) if count is None else count
        if not pairs.size:
            return
        ids = pairs[:, :2]
        bad = ids[(ids < 0) | (ids >= count)]
        if bad.size:
            row = int(np.nonzero(((ids < 0) | (ids >= count)).any(axis=1))[0][0])
            raise ValueError(f"{path}: pairs refer to patch {int(bad[0])} (pair {row + 1}) but {self.name!r} has "
                             f"patches 0 to {count - 1}; fix the file or rebuild the set")

    def _read_torchvision(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        import pickle

        import torch

        path = self.root / f"{self.name}.pt"
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
            raise ValueError(f"{path}: not a torchvision PhotoTour cache ({err})") from None
        if not (isinstance(content, (tuple, list)) and len(content) == 3
                and all(isinstance(t, torch.Tensor) for t in content)):
            raise ValueError(f"{path}: a torchvision PhotoTour cache is a tuple (patches, labels, matches) "
                             f"of tensors, got {type(content).__name__}")
        data, labels, matches = content
        if data.dtype != torch.uint8 or data.ndim != 3 or tuple(data.shape[1:]) != (PATCH_SIZE, PATCH_SIZE):
            raise ValueError(f"{path}: patches must be uint8 (N, 64, 64), got {data.dtype} {tuple(data.shape)}")
        if labels.shape != (len(data),):
            raise ValueError(f"{path}: {len(data)} patches but labels of shape {tuple(labels.shape)}")
        if matches.ndim != 2 or matches.shape[1] != 3:
            raise ValueError(f"{path}: matches must be (M, 3), got {tuple(matches.shape)}")
        pairs = matches.numpy().astype(np.int64)
        self._check_pairs(pairs, path, len(data))
        return data.numpy(), labels.numpy().astype(np.int64), {DEFAULT_PAIRS: pairs}

    # -- cache --------------------------------------------------------------------------------------
    def _cache_is_valid(self, signature: str | None) -> bool:
        """A readable cache of this version; when the source exists, built from exactly that source."""
        import h5py

        if not self.cache_path.is_file():
            return False
        try:
            with h5py.File(self.cache_path, "r") as f:
                if f.attrs.get("descnet_phototour") != CACHE_VERSION or "patches" not in f:
                    return False
                return signature is None or f.attrs.get("signature") == signature
        except OSError:
            if signature is None:
                raise ValueError(f"{self.cache_path}: unreadable cache and no source to rebuild it from "
                                 f"(no {self.folder} mosaics or {self.name}.pt)") from None
            return False

    def _write_cache(self, source: str, signature: str, progress: bool) -> None:
        import h5py

        try:
            with atomic_path(self.cache_path) as tmp:
                with h5py.File(tmp, "w") as f:
                    f.attrs["descnet_phototour"] = CACHE_VERSION
                    f.attrs["name"] = self.name
                    f.attrs["source"] = source
                    f.attrs["signature"] = signature
                    if source == "torchvision":
                        patches, labels, pairs = self._read_torchvision()
                        f.create_dataset("patches", data=patches)  # contiguous, so it can be memory-mapped
                    else:
                        count, labels = self._count_and_labels()
                        ds = f.create_dataset("patches", shape=(count, PATCH_SIZE, PATCH_SIZE), dtype=np.uint8)
                        for start, block in self._iter_patches(count, progress):
                            ds[start:start + len(block)] = block
                        pairs = self._read_all_pairs(count)
                    if labels is not None:
                        f.create_dataset("labels", data=labels)
                    if self.uncovered:
                        f.attrs["uncovered"] = self.uncovered
                    group = f.create_group("pairs")
                    for filename, table in pairs.items():
                        group.create_dataset(filename, data=table)
        except PermissionError as err:
            raise PermissionError(f"cannot write the cache {self.cache_path} ({err.strerror}); pass "
                                  f"cache_dir= a writable folder, or cache=False") from None

    def _load_cache(self, in_memory: bool) -> None:
        import h5py

        with h5py.File(self.cache_path, "r") as f:
            ds = f["patches"]
            shape = ds.shape
            offset = ds.id.get_offset()
            self.labels = f["labels"][...] if "labels" in f else None
            self._cached_pairs = set(f["pairs"]) if "pairs" in f else set()
            self.uncovered = str(f.attrs["uncovered"]) if "uncovered" in f.attrs else None
            if in_memory or offset is None:
                self.patches = ds[...]
                return
        # a contiguous, uncompressed HDF5 dataset is plain bytes at `offset`: map it (copy-on-write, so
        # the array is writable for torch.from_numpy and the file is never modified)
        self.patches = np.memmap(self.cache_path, dtype=np.uint8, mode="c", offset=offset, shape=shape)
