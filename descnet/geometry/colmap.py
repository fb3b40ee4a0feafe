"""Structure from motion with COLMAP through pycolmap: a features file + a matches file -> a sparse 3D model.

>>> summary = reconstruct("photos", "features.h5", "matches.h5", "sfm")   # sfm/model, sfm/summary.json
>>> summary.registered, summary.points3D, summary.mean_track_length

The steps are hloc's (``hloc/reconstruction.py``, ``hloc/triangulation.py``) on pycolmap's own API:

1. a new COLMAP database; the images named in the pair list are imported from the image folder with
   ``pycolmap.import_images`` (cameras from EXIF, one per image by default: ``camera_mode``);
2. keypoints written with ``Database.write_keypoints`` -- shifted by +0.5 px: descnet and hloc put the
   centre of the top-left pixel at (0, 0), COLMAP puts the *corner* of the top-left pixel there;
3. every pair's matches (all of them, not descnet's inliers) written with ``Database.write_matches``, after
   one step hloc does not need with COLMAP's own keypoints: OpenCV's SIFT returns a keypoint once per dominant
   orientation at the *same* position, and COLMAP's mapper fails on such twins when they are matched to
   different places (on the Sacre Coeur photos: 2 of 10 images registered instead of 10). A position is one
   2D point for geometry, so matches are moved to the first keypoint at each position and kept one-to-one
   (the closest descriptors first; :func:`merge_repeated_positions`); all keypoints are still written, so
   COLMAP's 2D point ``i`` is keypoint ``i`` of the features file;
4. COLMAP's geometric verification (``pycolmap.verify_matches``; hloc's RANSAC settings: 20,000 trials,
   minimum inlier ratio 0.1) and incremental mapping (``pycolmap.incremental_mapping``); the model with the
   most registered images is kept.

Mapping runs on one thread with seed 0 by default, so a run repeats exactly (COLMAP's multi-threaded
mapping does not). :func:`reconstruct_colmap_sift` is the reference: COLMAP's own SIFT extraction,
exhaustive matching and the same mapping. pycolmap is an optional dependency (``pip install 'descnet[sfm]'``).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..features.files import list_feature_names, list_match_pairs, read_feature_digests, read_features, read_matches
from ..io import check_foreign_files, earlier_result_files, result_set, write_json
from ..features.pairs import check_pairs, write_pairs
from .alignment import format_camera_table

__all__ = ["SfmOptions", "SfmSummary", "CAMERA_MODES", "COLMAP_ORIGIN_SHIFT", "import_pycolmap", "create_database",
           "first_at_position", "merge_repeated_positions", "reconstruct", "reconstruct_colmap_sift", "summarize_reconstruction",
           "format_table", "check_matches_fit_features", "no_model_reason", "RECONSTRUCTION_FILES",
           "ground_truth_errors"]

#: added to descnet/hloc keypoint coordinates to get COLMAP's (pixel corner at the origin)
COLMAP_ORIGIN_SHIFT = 0.5
#: ``camera_mode`` names -> pycolmap.CameraMode member names
CAMERA_MODES = {"auto": "AUTO", "single": "SINGLE", "per-folder": "PER_FOLDER", "per-image": "PER_IMAGE"}
INSTALL_HINT = "pip install 'descnet[sfm]' (or: pip install pycolmap)"
_MODEL_FILES = {"cameras.bin", "images.bin", "points3D.bin", "frames.bin", "rigs.bin", "project.ini"}
#: what :func:`reconstruct` writes into its folder, as one result set (:func:`descnet.io.result_set`)
RECONSTRUCTION_FILES = ("database.db", "model", "summary.json", "summary.md")


def import_pycolmap() -> Any:
    """``import pycolmap``, or ``ModuleNotFoundError`` saying how to install it."""
    try:
        import pycolmap
    except ImportError:
        raise ModuleNotFoundError(f"structure from motion needs pycolmap, which is not installed: {INSTALL_HINT}") \
            from None
    return pycolmap


@dataclass(frozen=True)
class SfmOptions:
    """COLMAP settings of a reconstruction.

    Attributes:
        camera_mode: :data:`CAMERA_MODES` key: ``auto`` (COLMAP's: images share a camera when their size and EXIF
            agree), ``single``, ``per-folder``, ``per-image``.
        threads: threads of the incremental mapper (1: the run repeats exactly).
        seed: random seed of COLMAP's RANSAC and mapper.
        max_ransac_trials, min_inlier_ratio: geometric verification (hloc's values).
        min_num_matches: pairs with fewer verified matches are ignored by the mapper (COLMAP's 15).
        verbose: show COLMAP's log.
    """

    camera_mode: str = "auto"
    threads: int = 1
    seed: int = 0
    max_ransac_trials: int = 20000
    min_inlier_ratio: float = 0.1
    min_num_matches: int = 15
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.camera_mode not in CAMERA_MODES:
            raise ValueError(f"camera mode {self.camera_mode!r}: choose one of {', '.join(CAMERA_MODES)}")
        if self.threads < 1 or self.max_ransac_trials < 1 or self.min_num_matches < 1:
            raise ValueError("threads, max_ransac_trials and min_num_matches must be at least 1")
        if not 0.0 <= self.min_inlier_ratio <= 1.0:
            raise ValueError(f"min_inlier_ratio must be in [0, 1], got {self.min_inlier_ratio}")


@dataclass(frozen=True)
class SfmSummary:
    """The numbers of a reconstruction (hloc's comparison table and more).

    ``images``: images given to COLMAP; ``registered``: images with a pose in the kept model; ``points3D``,
    ``observations`` (2D points of registered images that see a 3D point), ``mean_track_length``
    (observations per 3D point), ``mean_reprojection_error`` (px); ``pairs`` and ``matches`` imported
    (``merged_matches``: removed as repeats of a position, :func:`merge_repeated_positions`),
    ``verified_pairs`` (pairs COLMAP's geometric verification kept with at least ``min_num_matches`` inliers, the
    pairs the mapper uses) and their ``inlier_matches``; ``models``: how many
    models the mapper made (the largest is kept); ``seconds`` per stage. ``cameras``: with ground truth, the
    camera errors of the kept model (:meth:`descnet.geometry.alignment.CameraErrors.to_dict`), else ``None``.
    """

    images: int
    registered: int
    points3D: int
    observations: int
    mean_track_length: float
    mean_reprojection_error: float
    pairs: int
    matches: int
    verified_pairs: int
    inlier_matches: int
    models: int
    merged_matches: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_reconstruction(reconstruction: Any) -> dict[str, Any]:
    """Counts of a ``pycolmap.Reconstruction`` (``None`` or a model without 3D points: an empty model)."""
    if reconstruction is None or reconstruction.num_points3D() == 0:
        return {"registered": 0, "points3D": 0, "observations": 0, "mean_track_length": 0.0,
                "mean_reprojection_error": float("nan")}
    return {"registered": int(reconstruction.num_reg_images()), "points3D": int(reconstruction.num_points3D()),
            "observations": int(reconstruction.compute_num_observations()),
            "mean_track_length": float(reconstruction.compute_mean_track_length()),
            "mean_reprojection_error": float(reconstruction.compute_mean_reprojection_error())}


@contextlib.contextmanager
def _colmap_log(pycolmap: Any, verbose: bool) -> Iterator[None]:
    """Silence COLMAP's log (errors still show) unless ``verbose``."""
    before = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = before if verbose else 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = before


def first_at_position(keypoints: np.ndarray) -> np.ndarray:
    """``(N, 2+)`` keypoints -> ``(N,)`` index of the first keypoint at exactly the same ``x, y``."""
    if len(keypoints) == 0:
        return np.zeros(0, np.int64)
    _, first, inverse = np.unique(np.asarray(keypoints)[:, :2], axis=0, return_index=True, return_inverse=True)
    return first[inverse.ravel()].astype(np.int64)


def merge_repeated_positions(matches: np.ndarray, first0: np.ndarray, first1: np.ndarray,
                             distances: np.ndarray | None = None) -> np.ndarray:
    """Matches between keypoint *positions*: ``(M, 2)`` indices -> ``(K, 2)``, ``K <= M``.

    Each index is replaced by the first keypoint at its position (``first0``/``first1`` from
    :func:`first_at_position`), and matches are kept one-to-one, closest ``distances`` first (file order when
    ``None`` or NaN): a repeated pair of positions is one correspondence, and a position matched to two places
    keeps its best. The result is sorted by image-0 index.
    """
    m = np.asarray(matches, np.int64).reshape(-1, 2)
    if len(m) == 0:
        return m
    m = np.stack([first0[m[:, 0]], first1[m[:, 1]]], axis=1)
    order = np.arange(len(m))
    if distances is not None and np.isfinite(distances).all():
        order = np.argsort(np.asarray(distances), kind="stable")
    keep, used0, used1 = [], set(), set()
    for k in order:
        i, j = int(m[k, 0]), int(m[k, 1])
        if i not in used0 and j not in used1:
            used0.add(i)
            used1.add(j)
            keep.append(k)
    kept = m[np.sort(np.asarray(keep, np.int64))]
    return kept[np.argsort(kept[:, 0], kind="stable")]


def create_database(database: str | os.PathLike, image_dir: str | os.PathLike, features: str | os.PathLike,
                    matches: str | os.PathLike, pairs: Sequence[tuple[str, str]] | None = None,
                    camera_mode: str = "auto", verbose: bool = False) -> dict[str, Any]:
    """Write a new COLMAP database: images, keypoints (+0.5 px) and the matches of ``pairs`` (module docstring).

    ``pairs``: the pairs to import (default: every pair of the matches file); their images are imported from
    ``image_dir`` (names relative to it). Raises ``ValueError`` naming the image when a file is missing or its
    size differs from the one its features were computed on. Returns ``{"images": [names], "pairs": [pairs],
    "matches": written, "merged": matches removed by merge_repeated_positions}``.
    """
    pycolmap = import_pycolmap()
    database, image_dir, features, matches = Path(database), Path(image_dir), Path(features), Path(matches)
    if database.exists():
        raise ValueError(f"{database}: exists; COLMAP's database is written new")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no such image folder")
    pairs = check_pairs(list_match_pairs(matches) if pairs is None else pairs, source=f"pairs of {matches}")
    if not pairs:
        raise ValueError(f"{matches}: holds no pairs to reconstruct from")
    names = sorted({name for pair in pairs for name in pair})
    described = set(list_feature_names(features))
    for name in names:
        on_disk, in_features = (image_dir / name).is_file(), name in described
        if not on_disk and not in_features:
            raise ValueError(f"the pairs name the image {name}, which is neither an image of {features} nor a file "
                             f"under {image_dir} (a misspelt pair list?)")
        if not in_features:
            raise ValueError(f"{features}: holds no features of the image {name} that the pairs name; describe it "
                             "into that file first")
    missing = [name for name in names if not (image_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{image_dir / missing[0]}: no such image (the features name {len(missing)} image(s) "
                                f"that are not under {image_dir}; give the folder they were described from)")
    feats = read_features(features, names)
    pair_matches = read_matches(matches, pairs)
    check_matches_fit_features(features, matches, feats, pair_matches)
    total = merged = 0
    first = {name: first_at_position(f.keypoints) for name, f in feats.items()}
    with _colmap_log(pycolmap, verbose):
        with pycolmap.Database.open(database):
            pass
        pycolmap.import_images(database, image_dir, getattr(pycolmap.CameraMode, CAMERA_MODES[camera_mode]),
                               image_names=names)
        with pycolmap.Database.open(database) as db:
            transaction = pycolmap.DatabaseTransaction(db)  # every write below in one transaction (one commit)
            ids = {image.name: image for image in db.read_all_images()}
            for name in names:
                if name not in ids:
                    raise ValueError(f"{image_dir / name}: COLMAP could not import this image")
                camera = db.read_camera(ids[name].camera_id)
                height, width = feats[name].image_size
                if (camera.width, camera.height) != (width, height):
                    raise ValueError(f"{image_dir / name}: COLMAP reads a {camera.width}x{camera.height} image but "
                                     f"its features were computed on {width}x{height} (another file, a resized "
                                     "copy, or an EXIF rotation one reader applies and the other not)")
                xy = feats[name].keypoints[:, :2].astype(np.float64) + COLMAP_ORIGIN_SHIFT
                db.write_keypoints(ids[name].image_id, np.ascontiguousarray(xy, np.float32))
            for (name0, name1), pm in pair_matches.items():
                m = merge_repeated_positions(pm.matches, first[name0], first[name1], pm.distances)
                db.write_matches(ids[name0].image_id, ids[name1].image_id, np.ascontiguousarray(m, np.uint32))
                total += len(m)
                merged += len(pm.matches) - len(m)
            del transaction  # commits
    return {"images": names, "pairs": pairs, "matches": total, "merged": merged}


def check_matches_fit_features(features: str | os.PathLike, matches: str | os.PathLike, feats: Mapping[str, Any],
                               pair_matches: Mapping[tuple[str, str], Any]) -> None:
    """Refuse matches that were not computed from these features, before COLMAP sees them: a pair whose
    recorded entry digests (``PairMatches.feature_digests``) or keypoint counts differ from the features
    file's, or whose indices lie outside its keypoints (hloc's files record neither). ``ValueError`` naming
    the pair, both files and what to do."""
    hint = f"match again from {features} (descnet match --features ... --overwrite), or give the features file " \
           f"{matches} was computed from"
    digests = None
    for (name0, name1), pm in pair_matches.items():
        counts = (len(feats[name0]), len(feats[name1]))
        if pm.feature_digests is not None:
            if digests is None:
                digests = read_feature_digests(features, list(feats))
            for name, was in zip((name0, name1), pm.feature_digests):
                if was != digests[name]:
                    raise ValueError(f"{matches}: the matches of {name0} {name1} were computed from other features of "
                                     f"{name} (entry sha256 {was[:12]}...) than {features} holds ({digests[name][:12]}"
                                     f"...); {hint}")
        if pm.num_keypoints is not None and tuple(pm.num_keypoints) != counts:
            raise ValueError(f"{matches}: the matches of {name0} {name1} index {pm.num_keypoints[0]} and "
                             f"{pm.num_keypoints[1]} keypoints, but {features} holds {counts[0]} and {counts[1]}; "
                             f"{hint}")
        m = np.asarray(pm.matches)
        if len(m) and (m.min() < 0 or m[:, 0].max() >= counts[0] or m[:, 1].max() >= counts[1]):
            raise ValueError(f"{matches}: the matches of {name0} {name1} index keypoints beyond the {counts[0]} and "
                             f"{counts[1]} of {features}; {hint}")


def no_model_reason(summary: "SfmSummary") -> str | None:
    """Why a reconstruction made no model, in words (``None`` when it made one)."""
    if summary.registered:
        return None
    min_matches = summary.settings.get("min_num_matches", SfmOptions.min_num_matches)
    per_pair = summary.matches / summary.pairs if summary.pairs else 0.0
    if summary.verified_pairs == 0:
        return (f"COLMAP's geometric verification kept none of the {summary.pairs} pairs: each needs at least "
                f"{min_matches} inlier matches of one two-view geometry, and the {summary.matches} imported matches "
                f"({per_pair:.1f} per pair) did not give that. Too few or wrong matches: matches of another features "
                "file or image folder, too few keypoints, or a descriptor that does not fit these images")
    return (f"{summary.verified_pairs} of {summary.pairs} pairs were verified, but COLMAP's mapper found no initial "
            "pair it could triangulate from (too little baseline or overlap between the verified pairs)")


def _verify(pycolmap: Any, database: Path, pairs_file: Path, options: SfmOptions) -> None:
    two_view = pycolmap.TwoViewGeometryOptions()
    two_view.ransac.max_num_trials = options.max_ransac_trials
    two_view.ransac.min_inlier_ratio = options.min_inlier_ratio
    two_view.ransac.random_seed = options.seed
    pycolmap.verify_matches(database, pairs_file, options=two_view)


def _map(pycolmap: Any, database: Path, image_dir: Path, models_dir: Path, options: SfmOptions,
         progress: bool) -> tuple[Any, int]:
    """Incremental mapping -> (the model with the most registered images or None, number of models)."""
    from tqdm.auto import tqdm

    mapper = pycolmap.IncrementalPipelineOptions()
    mapper.num_threads = options.threads
    mapper.random_seed = options.seed
    mapper.min_num_matches = options.min_num_matches
    pycolmap.set_random_seed(options.seed)
    with pycolmap.Database.open(database) as db:
        total = db.num_images()
    bars: list[Any] = []

    def new_model() -> None:
        if bars:
            bars[-1].close()
        bars.append(tqdm(total=total, desc=f"map (model {len(bars)})", unit="image", disable=not progress))
        bars[-1].update(2)

    try:
        models = pycolmap.incremental_mapping(database, image_dir, models_dir, options=mapper,
                                              initial_image_pair_callback=new_model,
                                              next_image_callback=lambda: bars[-1].update(1) if bars else None)
    finally:
        for bar in bars:
            bar.close()
    if not models:
        return None, 0
    # hloc keeps the model with the most registered images; one without 3D points counts as empty
    best = max(models, key=lambda k: (models[k].num_reg_images() if models[k].num_points3D() else 0,
                                      models[k].num_points3D(), -k))
    chosen = models[best]
    return (chosen if chosen.num_points3D() else None), len(models)


def _database_counts(pycolmap: Any, database: Path, min_num_matches: int) -> dict[str, int]:
    """Pairs and matches in the database; a pair is *verified* when COLMAP kept at least ``min_num_matches``
    inlier matches (what the mapper uses), and ``inlier_matches`` counts those pairs' inliers."""
    with pycolmap.Database.open(database) as db:
        _, geometries = db.read_two_view_geometries()
        inliers = [len(g.inlier_matches) for g in geometries]
        kept = [n for n in inliers if n >= min_num_matches]
        return {"verified_pairs": len(kept), "inlier_matches": int(sum(kept)),
                "matched_pairs": int(db.num_matched_image_pairs()), "matches": int(db.num_matches())}


def ground_truth_errors(reconstruction: Any, ground_truth: Mapping[str, Any] | None,
                        names: Sequence[str]) -> dict[str, Any] | None:
    """Camera errors of a reconstruction (``None``: no model, every camera counts as unregistered) against the
    ground-truth cameras of the images ``names`` given to COLMAP (:func:`descnet.geometry.alignment.camera_errors`)
    as a dict; ``None`` without ground truth. Ground truth for none of the images is an error."""
    if ground_truth is None:
        return None
    from .alignment import camera_errors
    from .cameras import cameras_from_reconstruction

    truth = {name: ground_truth[name] for name in names if name in ground_truth}
    if not truth:
        raise ValueError(f"the ground truth has no camera for any of the {len(names)} images (names such as "
                         f"{names[0]!r} must match the ground truth's, e.g. {next(iter(ground_truth), None)!r})")
    estimated = cameras_from_reconstruction(reconstruction) if reconstruction is not None else {}
    return camera_errors(estimated, truth).to_dict()


def _check_out(out: Path) -> list[str]:
    """Check the output folder up front -> the names an older descnet wrote there without a manifest."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    model = out / "model"
    if model.exists():
        foreign = [p.name for p in model.iterdir()] if model.is_dir() else [model.name]
        foreign = [name for name in foreign if name not in _MODEL_FILES]
        if foreign or not model.is_dir():
            raise ValueError(f"{model}: holds files that are not a COLMAP model ({', '.join(foreign[:3])}); descnet "
                             "replaces only its own results: choose another output folder")
    # what an older descnet (no manifest) wrote: its names when summary.json is descnet's (a "reconstruction" key)
    earlier = earlier_result_files(out, "summary.json", "reconstruction", RECONSTRUCTION_FILES)
    check_foreign_files(out, RECONSTRUCTION_FILES, earlier)
    return earlier


def _stage(staged: Any, work: Path, reconstruction: Any, summary: SfmSummary, label: str) -> None:
    """Put the database, the model and the summary of ``work`` into the result set ``staged`` (they replace
    the earlier ones together; an earlier model is removed when there is no new one)."""
    os.replace(work / "database.db", staged.path("database.db"))
    if reconstruction is not None:
        model = staged.path("model")
        model.mkdir()
        reconstruction.write(model)
    else:  # an earlier run's model would now describe another database
        staged.drop("model")
    payload = {"reconstruction": label, **summary.to_dict()}
    reason = no_model_reason(summary)
    if reason:
        payload["no_model_reason"] = reason
    write_json(staged.path("summary.json"), payload)
    cameras = f"{format_camera_table({label: summary.cameras})}\n\n" if summary.cameras is not None else ""
    staged.path("summary.md").write_text(cameras + format_table({label: summary}) + "\n")


def _map_and_count(pycolmap, database: Path, image_dir: Path, work: Path, options: SfmOptions, progress: bool,
                   seconds: dict[str, float], start: float):
    """Incremental mapping (timed into ``seconds['map']``) and the database's match counts; sets
    ``seconds['total']`` from ``start``. Returns ``(largest model or None, number of models, counts)``."""
    t0 = time.perf_counter()
    model, count = _map(pycolmap, database, image_dir, work / "models", options, progress)
    seconds["map"] = time.perf_counter() - t0
    counts = _database_counts(pycolmap, database, options.min_num_matches)
    seconds["total"] = time.perf_counter() - start
    return model, count, counts


def reconstruct(image_dir: str | os.PathLike, features: str | os.PathLike, matches: str | os.PathLike,
                out: str | os.PathLike, *, pairs: Sequence[tuple[str, str]] | None = None,
                options: SfmOptions = SfmOptions(), label: str = "descnet", progress: bool = False,
                ground_truth: Mapping[str, Any] | None = None) -> SfmSummary:
    """Reconstruct a scene from a features file and a matches file with COLMAP (module docstring).

    Writes into the folder ``out``: ``database.db`` (COLMAP's), ``model/`` (the largest model, COLMAP's binary
    format; absent when no model could be made), ``summary.json`` and ``summary.md`` (:class:`SfmSummary`), as
    one result set (:func:`descnet.io.result_set`: all new, or after a failure or kill all as before; one
    writer at a time; a file of these names that descnet did not write is refused). Everything is computed in
    the set's staging folder first. ``pairs``: the pairs to use (default: all of the matches file); the matches
    are checked against the features before COLMAP sees them (:func:`check_matches_fit_features`). ``label``
    names the row of the table. ``ground_truth``: ``{image name: Camera}``
    (:func:`descnet.geometry.cameras.read_ground_truth`): the summary then holds the camera errors
    (:func:`ground_truth_errors`).
    """
    pycolmap = import_pycolmap()
    image_dir, out = Path(image_dir), Path(out)
    earlier = _check_out(out)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with result_set(out, earlier=earlier) as staged:
        work = staged.staging / "work"
        work.mkdir()
        database = work / "database.db"
        imported = create_database(database, image_dir, features, matches, pairs, options.camera_mode,
                                   options.verbose)
        seconds["import"] = time.perf_counter() - start
        write_pairs(work / "pairs.txt", imported["pairs"])
        with _colmap_log(pycolmap, options.verbose):
            t0 = time.perf_counter()
            _verify(pycolmap, database, work / "pairs.txt", options)
            seconds["verify"] = time.perf_counter() - t0
            model, count, counts = _map_and_count(pycolmap, database, image_dir, work, options, progress, seconds,
                                                  start)
        summary = SfmSummary(images=len(imported["images"]), pairs=len(imported["pairs"]), matches=imported["matches"],
                             merged_matches=imported["merged"], verified_pairs=counts["verified_pairs"], inlier_matches=counts["inlier_matches"],
                             models=count, seconds=seconds, settings={**asdict(options), "features": str(features),
                                                                      "matches": str(matches), "images": str(image_dir)},
                             cameras=ground_truth_errors(model, ground_truth, imported["images"]),
                             **summarize_reconstruction(model))
        _stage(staged, work, model, summary, label)
    return summary


def reconstruct_colmap_sift(image_dir: str | os.PathLike, out: str | os.PathLike, *,
                            names: Sequence[str] | None = None, max_features: int = 8192,
                            options: SfmOptions = SfmOptions(), progress: bool = False,
                            ground_truth: Mapping[str, Any] | None = None) -> SfmSummary:
    """The reference: COLMAP's own SIFT (``pycolmap.extract_features``, ``max_features`` per image), exhaustive
    matching (``pycolmap.match_exhaustive``: ratio 0.8, cross-check, its geometric verification) and the same
    mapping as :func:`reconstruct`, on the CPU (extraction and matching on all cores). Writes ``out`` like
    :func:`reconstruct` (row ``COLMAP SIFT``).
    """
    pycolmap = import_pycolmap()
    from ..data.images import list_images

    image_dir, out = Path(image_dir), Path(out)
    earlier = _check_out(out)
    names = list(names) if names is not None else list_images(image_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with result_set(out, earlier=earlier) as staged, _colmap_log(pycolmap, options.verbose):
        work = staged.staging / "work"
        work.mkdir()
        database = work / "database.db"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.sift.max_num_features = max_features
        pycolmap.extract_features(database, image_dir, image_names=names,
                                  camera_mode=getattr(pycolmap.CameraMode, CAMERA_MODES[options.camera_mode]),
                                  extraction_options=extraction, device=pycolmap.Device.cpu)
        seconds["extract"] = time.perf_counter() - start
        t0 = time.perf_counter()
        matching = pycolmap.FeatureMatchingOptions()
        two_view = pycolmap.TwoViewGeometryOptions()
        two_view.ransac.random_seed = options.seed
        pycolmap.match_exhaustive(database, matching_options=matching, verification_options=two_view,
                                  device=pycolmap.Device.cpu)
        seconds["match"] = time.perf_counter() - t0
        model, count, counts = _map_and_count(pycolmap, database, image_dir, work, options, progress, seconds, start)
        summary = SfmSummary(images=len(names), pairs=counts["matched_pairs"], matches=counts["matches"],
                             verified_pairs=counts["verified_pairs"], inlier_matches=counts["inlier_matches"],
                             models=count, seconds=seconds, settings={**asdict(options), "max_features": max_features,
                                                                      "images": str(image_dir)},
                             cameras=ground_truth_errors(model, ground_truth, names),
                             **summarize_reconstruction(model))
        _stage(staged, work, model, summary, "COLMAP SIFT")
    return summary


def format_table(rows: Mapping[str, SfmSummary]) -> str:
    """A markdown table, one row per reconstruction: hloc's columns (registered images, 3D points, track
    length, reprojection error) and the matches before and after COLMAP's verification, seconds."""
    headers = ["descriptor", "registered", "3D points", "observations", "track length", "reproj. error px",
               "verified pairs", "inlier matches", "seconds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, s in rows.items():
        error = "-" if not np.isfinite(s.mean_reprojection_error) else f"{s.mean_reprojection_error:.3f}"
        lines.append("| " + " | ".join([
            label, f"{s.registered} / {s.images}", f"{s.points3D:,}", f"{s.observations:,}",
            f"{s.mean_track_length:.2f}", error, f"{s.verified_pairs} / {s.pairs}", f"{s.inlier_matches:,}",
            f"{s.seconds.get('total', float('nan')):.1f}"]) + " |")
    return "\n".join(lines)
