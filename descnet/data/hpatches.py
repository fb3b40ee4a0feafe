"""HPatches patches (``hpatches-release``) and the official benchmark task files.

On-disk layout of ``hpatches-release`` (Balntas et al., CVPR 2017)::

    <root>/<sequence>/<type>.png   116 sequence folders: 57 ``i_*`` (illumination), 59 ``v_*`` (viewpoint);
                                   16 types ``ref, e1..e5, h1..h5, t1..t5``; each PNG is an 8-bit
                                   grayscale vertical stack of N 65x65 patches (65 x 65N pixels). Row i is
                                   the same scene point in all 16 files of a sequence; e/h/t = easy, hard,
                                   tough affine jitter; k = target image k of the sequence.

The task files come from the official ``hpatches-benchmark`` repository (folder ``tasks/``), not from
``hpatches-release``; ``descnet data download hpatches-tasks`` puts them in ``<root>/../tasks``::

    <tasks>/splits/splits.json                  {"a": {"name": "a", "train": [...], "test": [...]}, ...}:
                                                splits a, b, c (76 train / 40 test), illum, view, full
    <tasks>/retr_queries_split-<S>.csv          header ``s,idx``: 10,000 retrieval queries (ref patches)
    <tasks>/retr_distractors_split-<S>.csv      header ``s,idx``: 20,000 retrieval distractors
    <tasks>/verif_{pos,neg_intra,neg_inter}_split-<S>.csv
                                                header ``s1,t1,idx1,s2,t2,idx2``: verification pairs;
                                                ``t`` = 0 for ref, k for image k of the noise level

Everything that knows these formats lives here. Patches are uint8 ``(N, 65, 65)`` arrays.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PATCH_SIZE", "TYPES", "LEVELS", "LEVEL_NAMES", "SPLIT_NAMES", "VERIFICATION_KINDS", "TASKS_HINT",
    "HPatches", "Split", "PatchRefs", "VerificationPairs", "read_patch_stack", "write_patch_stack",
    "png_size", "find_tasks_dir", "splits_path", "read_splits", "read_split", "read_retrieval_task",
    "read_verification_pairs", "verification_pairs_paths", "write_verification_pairs",
]

PATCH_SIZE = 65
#: The 16 image types of a sequence, in the order of the official code.
TYPES = ("ref", "e1", "e2", "e3", "e4", "e5", "h1", "h2", "h3", "h4", "h5", "t1", "t2", "t3", "t4", "t5")
#: Noise levels (geometric jitter) of the target images.
LEVELS = ("e", "h", "t")
LEVEL_NAMES = {"e": "easy", "h": "hard", "t": "tough"}
SPLIT_NAMES = ("a", "b", "c", "illum", "view", "full")
VERIFICATION_KINDS = ("pos", "neg_intra", "neg_inter")
TASKS_HINT = ("get the official task files with `descnet data download hpatches-tasks --root DIR` (they go "
              "to DIR/tasks) or from github.com/hpatches/hpatches-benchmark (folder tasks/), and pass "
              "--tasks-dir")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------- patch stacks
def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of a PNG from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _rows_from_size(path: Path, width: int, height: int) -> int:
    if width != PATCH_SIZE or height % PATCH_SIZE != 0 or height == 0:
        raise ValueError(f"{path}: an HPatches patch stack is {PATCH_SIZE} pixels wide and a multiple of "
                         f"{PATCH_SIZE} high, got {width}x{height}")
    return height // PATCH_SIZE


def read_patch_stack(path: str | os.PathLike) -> np.ndarray:
    """Read one ``<type>.png`` stack: uint8 ``(N, 65, 65)``, patch i = rows ``65i .. 65i+64``."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such patch stack")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: cannot decode the PNG (truncated or not an image)")
    n = _rows_from_size(path, image.shape[1], image.shape[0])
    return np.ascontiguousarray(image.reshape(n, PATCH_SIZE, PATCH_SIZE))


def write_patch_stack(path: str | os.PathLike, patches: np.ndarray) -> Path:
    """Write uint8 ``(N, 65, 65)`` patches as an HPatches PNG stack (the inverse of :func:`read_patch_stack`)."""
    import cv2

    from descnet.io import atomic_path

    patches = np.asarray(patches)
    if patches.dtype != np.uint8 or patches.ndim != 3 or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE) \
            or len(patches) == 0:
        raise ValueError(f"patches must be uint8 (N, 65, 65) with N > 0, got {patches.dtype} {patches.shape}")
    ok, png = cv2.imencode(".png", patches.reshape(-1, PATCH_SIZE))  # imwrite cannot: the temp name ends .tmp
    if not ok:
        raise OSError(f"{path}: cv2 could not encode the PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return Path(path)


# ------------------------------------------------------------------------------------------ task files
@dataclass(frozen=True)
class Split:
    """An official split: ``name`` and its ``train`` and ``test`` sequence names (``train`` may be empty)."""
    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class PatchRefs:
    """Patches named by ``sequence`` (str ``(M,)``) and row ``idx`` (int64 ``(M,)``); ``source`` = file."""
    sequence: np.ndarray
    idx: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.idx)


@dataclass(frozen=True)
class VerificationPairs:
    """Verification pairs ``(s1, t1, idx1, s2, t2, idx2)``, each ``(M,)``; ``t`` = 0 (ref) or image 1..5."""
    s1: np.ndarray
    t1: np.ndarray
    idx1: np.ndarray
    s2: np.ndarray
    t2: np.ndarray
    idx2: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.idx1)


def find_tasks_dir(root: str | os.PathLike | None) -> Path | None:
    """The default task folder of an ``hpatches-release`` root: ``<root>/../tasks`` or ``<root>/tasks``."""
    if root is None:
        return None
    root = Path(root)
    for candidate in (root.parent / "tasks", root / "tasks"):
        if candidate.is_dir():
            return candidate
    return None


def splits_path(tasks_dir: str | os.PathLike) -> Path:
    """``<tasks>/splits/splits.json`` (the official place) or ``<tasks>/splits.json``; errors when neither."""
    tasks_dir = Path(tasks_dir)
    for candidate in (tasks_dir / "splits" / "splits.json", tasks_dir / "splits.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{tasks_dir / 'splits' / 'splits.json'}: no HPatches split file; {TASKS_HINT}")


def read_splits(tasks_dir: str | os.PathLike) -> dict[str, Split]:
    """All splits of ``splits.json``: name -> :class:`Split`."""
    path = splits_path(tasks_dir)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of splits")
    splits = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("test"), list):
            raise ValueError(f"{path}: split {key!r} has no 'test' list of sequences")
        splits[key] = Split(str(entry.get("name", key)), tuple(entry.get("train", ())), tuple(entry["test"]))
    return splits


def read_split(tasks_dir: str | os.PathLike, name: str) -> Split:
    """One split by name; a clear error lists the known names for an unknown one."""
    splits = read_splits(tasks_dir)
    if name not in splits:
        raise ValueError(f"unknown HPatches split {name!r}; {splits_path(tasks_dir)} defines: "
                         f"{', '.join(sorted(splits))}")
    return splits[name]


def _read_table(path: Path, columns: Sequence[str]) -> dict[str, list[str]]:
    """A comma-separated file with a header naming ``columns`` -> column name -> list of its cells."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such task file; {TASKS_HINT}") from None
    header_line, _, body = text.replace("\r\n", "\n").partition("\n")
    if not header_line.strip():
        raise ValueError(f"{path}: empty file (expected the header {','.join(columns)})")
    header = [h.strip() for h in header_line.split(",")]
    if any(c not in header for c in columns):
        raise ValueError(f"{path}: the header must name the columns {','.join(columns)} (comma separated), "
                         f"found {header_line!r}")
    width = len(header)
    lines = body.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    cells = ",".join(lines).split(",") if lines else []  # 1e6 rows in well under a second
    if len(cells) != width * len(lines):
        bad = next(i for i, line in enumerate(lines) if line.count(",") != width - 1)
        raise ValueError(f"{path}: line {bad + 2} has {lines[bad].count(',') + 1} fields, the header has {width}")
    return {c: cells[header.index(c)::width] for c in columns}


def _ints(path: Path, column: str, cells: list[str]) -> np.ndarray:
    try:
        return np.array(cells, dtype=np.int64)
    except ValueError:
        bad = next(c for c in cells if not c.strip().lstrip("-").isdigit())
        raise ValueError(f"{path}: column {column!r} must hold integers, found {bad!r}") from None


def _names(cells: list[str]) -> np.ndarray:
    return np.char.strip(np.array(cells, dtype=str))


def read_retrieval_task(tasks_dir: str | os.PathLike, split: str) -> tuple[PatchRefs, PatchRefs]:
    """``(queries, distractors)`` of a split from ``retr_queries_split-S.csv`` and ``retr_distractors_split-S.csv``."""
    out = []
    for kind in ("queries", "distractors"):
        path = Path(tasks_dir) / f"retr_{kind}_split-{split}.csv"
        table = _read_table(path, ("s", "idx"))
        out.append(PatchRefs(_names(table["s"]), _ints(path, "idx", table["idx"]), str(path)))
    return out[0], out[1]


def verification_pairs_paths(tasks_dir: str | os.PathLike, split: str) -> dict[str, Path]:
    """kind (``pos``, ``neg_intra``, ``neg_inter``) -> path of its official verification file."""
    return {kind: Path(tasks_dir) / f"verif_{kind}_split-{split}.csv" for kind in VERIFICATION_KINDS}


def read_verification_pairs(tasks_dir: str | os.PathLike, split: str) -> dict[str, VerificationPairs] | None:
    """The three official verification files of a split, or ``None`` when none of them exists.

    Raises when only some exist (an incomplete download) or a file is malformed.
    """
    paths = verification_pairs_paths(tasks_dir, split)
    present = [p for p in paths.values() if p.is_file()]
    if not present:
        return None
    if len(present) != len(paths):
        missing = [str(p) for p in paths.values() if not p.is_file()]
        raise FileNotFoundError(f"incomplete verification task files: {', '.join(missing)} missing "
                                f"({TASKS_HINT})")
    pairs = {}
    for kind, path in paths.items():
        t = _read_table(path, ("s1", "t1", "idx1", "s2", "t2", "idx2"))
        t1, t2 = _ints(path, "t1", t["t1"]), _ints(path, "t2", t["t2"])
        if len(t1) and (min(t1.min(), t2.min()) < 0 or max(t1.max(), t2.max()) > 5):
            raise ValueError(f"{path}: image types t1, t2 must be 0 (ref) .. 5")
        pairs[kind] = VerificationPairs(_names(t["s1"]), t1, _ints(path, "idx1", t["idx1"]), _names(t["s2"]),
                                        t2, _ints(path, "idx2", t["idx2"]), str(path))
    return pairs


def write_verification_pairs(tasks_dir: str | os.PathLike, split: str,
                             pairs: Mapping[str, VerificationPairs]) -> dict[str, Path]:
    """Write pair sets in the official format (``verif_<kind>_split-<split>.csv``, header
    ``s1,t1,idx1,s2,t2,idx2``), atomically; returns kind -> path."""
    from descnet.io import atomic_path

    paths = verification_pairs_paths(tasks_dir, split)
    for kind, path in paths.items():
        p = pairs[kind]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            f.write("s1,t1,idx1,s2,t2,idx2\n")
            f.writelines(f"{a},{b},{c},{d},{e},{g}\n" for a, b, c, d, e, g in
                         zip(p.s1.tolist(), p.t1.tolist(), p.idx1.tolist(), p.s2.tolist(), p.t2.tolist(),
                             p.idx2.tolist()))
    return paths


# -------------------------------------------------------------------------------------------- dataset
class HPatches(Mapping):
    """The ``hpatches-release`` patches: a mapping sequence name -> dict type -> uint8 ``(N, 65, 65)``.

    Sequences load lazily from disk on access (``dataset["v_churchill"]["e1"]``); nothing is cached, so
    keep what you need. See the module docstring for the on-disk format.

    Args:
        root: the ``hpatches-release`` folder (sequence folders ``i_*`` and ``v_*``).
        tasks_dir: folder of the official task files (``splits/splits.json``, task CSVs); default
            ``<root>/../tasks`` or ``<root>/tasks`` when present.
        types: the image types loaded per sequence (default all 16).
    """

    def __init__(self, root: str | os.PathLike, tasks_dir: str | os.PathLike | None = None,
                 types: Sequence[str] = TYPES) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such hpatches-release folder")
        unknown = [t for t in types if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown HPatches image type(s) {unknown}; types are {', '.join(TYPES)}")
        self.types = tuple(types)
        self.sequences = tuple(sorted(p.name for p in self.root.iterdir()
                                      if p.is_dir() and p.name[:2] in ("i_", "v_")))
        if not self.sequences:
            raise FileNotFoundError(f"{self.root}: no HPatches sequence folders (i_*, v_*); is this the "
                                    f"hpatches-release folder?")
        self.tasks_dir = Path(tasks_dir) if tasks_dir is not None else find_tasks_dir(self.root)

    def __repr__(self) -> str:
        return f"HPatches(root='{self.root}', sequences={len(self.sequences)}, tasks_dir={self.tasks_dir})"

    # -- mapping -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[str]:
        return iter(self.sequences)

    def __contains__(self, name: object) -> bool:
        return name in self.sequences

    def __getitem__(self, name: str) -> dict[str, np.ndarray]:
        return self.load_sequence(name)

    # -- patches -------------------------------------------------------------------------------------
    def _folder(self, name: str) -> Path:
        if name not in self.sequences:
            raise FileNotFoundError(f"{self.root / name}: missing HPatches sequence {name!r} "
                                    f"({len(self.sequences)} sequences in {self.root})")
        return self.root / name

    def _stack_path(self, name: str, kind: str) -> Path:
        path = self._folder(name) / f"{kind}.png"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing image type {kind!r} of sequence {name!r}")
        return path

    def num_patches(self, name: str) -> int:
        """Rows N of a sequence, from the PNG headers only; checks all types agree."""
        counts = {}
        for kind in self.types:
            path = self._stack_path(name, kind)
            counts[kind] = _rows_from_size(path, *png_size(path))
        _check_rows(self.root / name, counts)
        return counts[self.types[0]]

    def load_sequence(self, name: str, types: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """type -> uint8 ``(N, 65, 65)`` for one sequence; errors name the missing or inconsistent file."""
        types = self.types if types is None else tuple(types)
        stacks = {kind: read_patch_stack(self._stack_path(name, kind)) for kind in types}
        _check_rows(self.root / name, {k: len(v) for k, v in stacks.items()})
        return stacks

    def check(self, sequences: Sequence[str] | None = None) -> dict[str, int]:
        """Check (from the PNG headers) that ``sequences`` exist with all types and consistent row counts.

        Returns sequence -> N. Cheap: reads 24 bytes per file.
        """
        names = self.sequences if sequences is None else tuple(sequences)
        missing = [s for s in names if s not in self.sequences]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FileNotFoundError(f"{self.root}: missing HPatches sequence folder(s) {shown}")
        return {s: self.num_patches(s) for s in names}

    def patches_and_labels(self, sequences: Sequence[str] | None = None, types: Sequence[str] | None = None,
                           progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All patches of ``sequences`` with their labels, e.g. to train on a split's train sequences.

        Returns:
            patches: uint8 ``(M, 65, 65)``, sequence by sequence, type by type, row by row.
            labels: int64 ``(M, 3)`` columns ``(sequence, row, type)``: sequence = index into
                ``sequences``, type = index into ``types``. Patches with equal (sequence, row) show the
                same scene point.
        """
        from tqdm.auto import tqdm

        names = self.sequences if sequences is None else tuple(sequences)
        types = self.types if types is None else tuple(types)
        patches, labels = [], []
        for si, name in enumerate(tqdm(names, desc="hpatches", unit="seq", disable=not progress, leave=False)):
            stacks = self.load_sequence(name, types)
            for ti, kind in enumerate(types):
                n = len(stacks[kind])
                patches.append(stacks[kind])
                labels.append(np.stack([np.full(n, si), np.arange(n), np.full(n, ti)], axis=1))
        if not patches:
            return np.zeros((0, PATCH_SIZE, PATCH_SIZE), np.uint8), np.zeros((0, 3), np.int64)
        return np.concatenate(patches), np.concatenate(labels).astype(np.int64)

    # -- task files ----------------------------------------------------------------------------------
    def _tasks(self) -> Path:
        if self.tasks_dir is None:
            raise FileNotFoundError(f"no HPatches task folder next to {self.root} ({self.root.parent / 'tasks'}); "
                                    f"{TASKS_HINT}")
        return self.tasks_dir

    def splits(self) -> dict[str, Split]:
        return read_splits(self._tasks())

    def split(self, name: str) -> Split:
        return read_split(self._tasks(), name)

    def retrieval_task(self, split: str) -> tuple[PatchRefs, PatchRefs]:
        return read_retrieval_task(self._tasks(), split)

    def verification_pairs(self, split: str) -> dict[str, VerificationPairs] | None:
        return read_verification_pairs(self._tasks(), split)


def _check_rows(folder: Path, counts: Mapping[str, int]) -> None:
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise ValueError(f"{folder}: the image types of a sequence must have the same number of patches, "
                         f"got {detail}")
