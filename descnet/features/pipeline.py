"""Many images: describe a folder into a features file, match a pair list into a matches file.

>>> describe_to_file({"a.jpg": "imgs/a.jpg", "b.jpg": "imgs/b.jpg"}, "features.h5", model="opencv-rootsift")
>>> match_to_file("features.h5", [("a.jpg", "b.jpg")], "matches.h5")

Both *add* to their output file (:func:`descnet.features.files.append_features`): images or pairs already in it
are skipped, so an interrupted run (error, Ctrl-C) resumes where it stopped, and a file grows as images are
added to a collection. What is skipped is checked by content first: the model (its weights' digest), the
detector settings and each skipped image's content must be those of this run; a skipped pair's matches must
have been computed from the features file's entries as they are now. A mismatch is refused, naming both
sides and ``--overwrite`` (start afresh) or another ``--out``. Files follow hloc's layout
(:mod:`descnet.features.files`), so hloc reads them and :mod:`descnet.geometry.colmap` turns them into a COLMAP
reconstruction.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..data.images import list_images, read_image_list
from ..data.download import file_digest
from ..io import one_run_per_folder
from ..models.contract import model_digest, model_label
from ..models.pretrained import DEFAULT_MODEL
from .files import (Features, PairMatches, append_features, append_matches, check_image_name, check_pair_keys,
                    list_feature_names, read_feature_digests, read_feature_info, read_features, unique_group_names)
from .options import KeypointOptions, MatchOptions
from .pairs import check_pairs

__all__ = ["image_sources", "describe_to_file", "match_to_file", "match_pair_to_dir", "DescribeReport", "MatchReport",
           "descriptor_settings"]


def image_sources(paths: Sequence[str | os.PathLike], image_list: str | os.PathLike | None = None) -> dict[str, Path]:
    """Images to describe by name -> ``{name: file}``: the naming rule of every descnet command.

    * one folder: every image under it (:func:`descnet.data.images.list_images`) or those of ``image_list``
      (hloc's image lists), named by their path relative to the folder (hloc's names);
    * image files: named by their file name, made unique with ``~2``, ``~3`` ... in order.

    Folders and files cannot be mixed, and ``image_list`` needs exactly one folder.
    """
    paths = [Path(p) for p in paths]
    folders = [p for p in paths if p.is_dir()]
    if image_list is not None and (len(paths) != 1 or not folders):
        raise ValueError("--image-list: give exactly one image folder, the one the listed names are relative to")
    if folders:
        if len(paths) != 1:
            raise ValueError(f"{folders[0]}: give one image folder, or image files, not both or several folders")
        root = folders[0]
        names = list_images(root) if image_list is None else read_image_list(image_list)
        for name in names:
            check_image_name(name, f"{image_list or root}: image name")
            if image_list is not None and not (root / name).is_file():
                raise FileNotFoundError(f"{image_list}: {name} is not a file under {root}")
        return {name: root / name for name in names}
    if not paths:
        raise ValueError("no images given")
    return dict(zip(unique_group_names(paths), paths))


def descriptor_settings(label: str, options: KeypointOptions, digest: str | None = None) -> dict[str, Any]:
    """The settings a features file records and checks when images are added: the model's label
    (:func:`~descnet.models.model_label`) and content digest (:func:`~descnet.models.model_digest`), the
    detector, its keypoint limit and the region size in use."""
    return {"model": label, "model_digest": digest, "detector": options.detector,
            "max_keypoints": options.max_keypoints, "mr_size": options.mr_size_or_default}


@dataclass(frozen=True)
class DescribeReport:
    """What :func:`describe_to_file` did: images ``described`` and ``skipped`` (already in the file), the
    ``empty`` ones (no keypoints; stored with N = 0), keypoints written, seconds. ``elsewhere``: skipped names
    whose stored image path is another file than the one given now (a renamed folder, or two folders with the
    same image names: worth a look)."""

    path: Path
    described: list[str]
    skipped: list[str]
    empty: list[str]
    keypoints: int
    seconds: float
    elsewhere: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return len(self.described) / self.seconds if self.seconds > 0 else 0.0


def describe_to_file(images: Mapping[str, str | os.PathLike], out: str | os.PathLike, *, model: Any = DEFAULT_MODEL,
                     keypoints: Mapping[str, Any] | None = None, options: KeypointOptions = KeypointOptions(),
                     device: str = "cpu", overwrite: bool = False, progress: bool = False,
                     log: Callable[[str], None] | None = None) -> DescribeReport:
    """Describe ``{name: image file}`` into the features file ``out``, adding to it and skipping names it holds.

    Args:
        images: image names (paths relative to the image folder; :func:`image_sources`) and their files.
        out: the features file (:mod:`descnet.features.files`); created if absent. An existing file must have been
            made with the same model, detector and region size (``ValueError`` otherwise) unless ``overwrite``.
        model: a model SPEC (``opencv-rootsift`` among them) or a module; resolved once.
        keypoints: optional ``{name: keypoints}`` (an ``(N, 4)`` array or a keypoint file) instead of detecting.
        options, device: as :func:`descnet.features.description.describe_images`.
        overwrite: start a new file instead of adding to ``out``.
        progress: a progress bar (images, images/s).
        log: called with one line per image (file, keypoints, descriptor size, group); ``None``: silent. With a
            progress bar pass ``tqdm.write`` so the lines go above it.

    Images stream through :func:`descnet.features.description.describe_stream`: the next images are read, detected
    and cut on all cores while the network describes one, which is added to the file as soon as it is described;
    the file is replaced when all are done, or when the run stops early (error, Ctrl-C) with the images finished
    so far.
    """
    from tqdm.auto import tqdm

    from ..models import resolve_model
    from .description import describe_stream

    start = time.perf_counter()
    keypoints = dict(keypoints or {})
    unknown = [name for name in keypoints if name not in images]
    if unknown:
        raise ValueError(f"keypoints given for {unknown[0]}, which is not among the images")
    net = resolve_model(model)
    settings = descriptor_settings(model_label(net), options, model_digest(net))
    described, skipped, empty, count = [], [], [], 0
    with append_features(out, settings, overwrite=overwrite) as add:
        todo = []
        for name in images:
            (skipped if name in add else todo).append(name)
        for name in skipped:
            _check_same_image(out, name, add.info(name).get("image_sha256"), images[name])
        with tqdm(total=len(todo), desc="describe", unit="image", disable=not progress or not todo) as bar:
            stream = describe_stream([images[n] for n in todo], [keypoints.get(n) for n in todo], model=net,
                                     options=options, device=device)
            for name, f in zip(todo, stream):
                f = replace(f, info={**f.info, "image_sha256": file_digest(images[name])})
                add(name, f)
                described.append(name)
                count += len(f)
                if len(f) == 0:
                    empty.append(name)
                if log is not None:
                    note = ("no keypoints (stored empty)" if len(f) == 0
                            else f"{len(f)} keypoints, {f.descriptors.shape[1]}-D descriptors")
                    log(f"{images[name]}: {note} -> /{name}")
                bar.update(1)
    elsewhere = []
    if skipped:
        stored = read_feature_info(out, skipped)
        elsewhere = [name for name in skipped if not _same_file(stored[name].get("image"), images[name])]
    return DescribeReport(Path(out), described, skipped, empty, count, time.perf_counter() - start, elsewhere)


def _check_same_image(out: str | os.PathLike, name: str, stored: str | None, given: str | os.PathLike) -> None:
    """Refuse to skip an image whose features were computed from other content than the file ``given`` now
    (a file without the record, from an older descnet, is refused too: its images cannot be checked)."""
    now = file_digest(given)
    if stored != now:
        was = f"image sha256 {stored[:12]}..." if stored else "no record of the image's content"
        raise ValueError(f"{out}: holds features of image {name!r} made from other content ({was}; {given} now "
                         f"has sha256 {now[:12]}...); describe into another --out, or start it afresh with "
                         "--overwrite")


def _same_file(stored: Any, given: str | os.PathLike) -> bool:
    """Whether the image path a features file recorded is the file given now (paths as typed, or the same file)."""
    if stored is None or str(stored) == str(given):
        return True
    try:
        return Path(stored).exists() and Path(stored).samefile(given)
    except OSError:
        return False


@dataclass(frozen=True)
class MatchReport:
    """What :func:`match_to_file` did: pairs ``matched`` and ``skipped`` (already in the file), the mean
    number of matches and inliers per matched pair, seconds."""

    path: Path
    matched: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    mean_matches: float
    mean_inliers: float
    seconds: float

    @property
    def pairs_per_second(self) -> float:
        return len(self.matched) / self.seconds if self.seconds > 0 else 0.0


def _feature_cache(path: Path, size: int) -> Callable[[str], Features]:
    """``name -> Features`` read from ``path``, keeping the last ``size`` images in memory."""
    cache: OrderedDict[str, Features] = OrderedDict()

    def get(name: str) -> Features:
        if name in cache:
            cache.move_to_end(name)
        else:
            cache[name] = read_features(path, [name])[name]
            if len(cache) > size:
                cache.popitem(last=False)
        return cache[name]

    return get


#: the files :func:`match_pair_to_dir` writes
PAIR_DIR_FILES = ("features.h5", "matches.h5", "matches.png", "summary.json")

#: :func:`match_to_file`'s default: a fundamental matrix, the geometry of a general 3D scene
PAIR_LIST_MATCHING = MatchOptions(geometry="fundamental")


def match_to_file(features: str | os.PathLike, pairs: Sequence[tuple[str, str]], out: str | os.PathLike, *,
                  options: MatchOptions = PAIR_LIST_MATCHING, overwrite: bool = False, progress: bool = False,
                  cache_size: int = 64) -> MatchReport:
    """Match the listed image pairs of a features file into the matches file ``out``, adding to it.

    Each pair: :func:`descnet.features.matching.match` on the stored descriptors, then
    :func:`descnet.features.matching.verify`, as ``options`` say (:class:`~descnet.features.options.MatchOptions`;
    by default :data:`PAIR_LIST_MATCHING`, mutual nearest neighbours and a fundamental matrix). Pairs ``out``
    already holds (in either order) are skipped; an existing ``out`` must have the same settings unless
    ``overwrite``. Every name must be an image of ``features``. ``cache_size`` images are kept in memory (list
    pairs image by image, as exhaustive and sequential lists do).
    """
    from tqdm.auto import tqdm

    from .matching import match, verify

    start = time.perf_counter()
    features = Path(features)
    known = list_feature_names(features)
    for name in sorted({name for pair in pairs for name in pair} - set(known)):
        try:  # a group of that name without keypoints says so; an absent one is check_pairs' error
            read_features(features, [name])
        except KeyError:
            pass
    pairs = check_pairs(pairs, known, source=f"pairs of {features}")
    check_pair_keys(pairs)
    settings = options.settings()
    get = _feature_cache(features, max(2, cache_size))
    matched, skipped, counts = [], [], []
    with append_matches(out, settings, overwrite=overwrite) as add:
        todo = []
        for pair in pairs:
            (skipped if pair in add else todo).append(pair)
        digests = read_feature_digests(features, sorted({name for pair in pairs for name in pair}))
        if skipped:
            _check_same_features(out, features, skipped, add, digests)
        for name0, name1 in tqdm(todo, desc="match", unit="pair", disable=not progress or not todo):
            f0, f1 = get(name0), get(name1)
            m = match(f0.descriptors, f1.descriptors, options.matcher, options.ratio)
            v = verify(f0.keypoints[m.indices[:, 0], :2], f1.keypoints[m.indices[:, 1], :2], options.geometry,
                       options.estimator, options.threshold)
            add(name0, name1, PairMatches(m.indices, m.distances, v.inliers, v.geometry_matrix, settings,
                                          num_keypoints=(len(f0), len(f1)),
                                          feature_digests=(digests[name0], digests[name1])))
            matched.append((name0, name1))
            counts.append((len(m.indices), int(v.inliers.sum())))
    mean = np.mean(counts, axis=0) if counts else np.zeros(2)
    return MatchReport(Path(out), matched, skipped, float(mean[0]), float(mean[1]), time.perf_counter() - start)


def _check_same_features(out: str | os.PathLike, features: Path, pairs: Sequence[tuple[str, str]], add: Any,
                         digests: Mapping[str, str]) -> None:
    """Refuse to skip pairs whose matches were computed from other features than ``features`` holds now: the
    recorded entry digests differ (``digests``: the entries' now), or (files without them) the keypoint counts
    do."""
    names = sorted({name for pair in pairs for name in pair})
    counts = None
    for name0, name1 in pairs:
        held = add.info((name0, name1))
        if held["feature_digests"] is not None:
            differ = [(name, was) for name, was in zip((name0, name1), held["feature_digests"]) if was != digests[name]]
            if differ:
                name, was = differ[0]
                raise ValueError(f"{out}: holds matches of {name0} {name1} computed from other features of {name} "
                                 f"(entry sha256 {was[:12]}... there, {digests[name][:12]}... in {features} now); "
                                 "match into another --out, or start it afresh with --overwrite")
            continue
        if counts is None:
            counts = {name: len(f) for name, f in read_features(features, names).items()}
        now = (counts[name0], counts[name1])
        if held["num_keypoints"] != now:
            raise ValueError(f"{out}: holds matches of {name0} {name1} computed from other features (keypoints "
                             f"{held['num_keypoints']} there, {now} in {features} now); match into another --out, "
                             "or start it afresh with --overwrite")


@one_run_per_folder("out")
def match_pair_to_dir(image1: str | os.PathLike, image2: str | os.PathLike, out: str | os.PathLike, *, model: Any,
                      keypoints1: Any = None, keypoints2: Any = None,
                      keypoint_options: KeypointOptions = KeypointOptions(),
                      match_options: MatchOptions = MatchOptions(), device: str = "cpu", draw_outliers: bool = False,
                      max_lines: int | None = 300, matcher_origin: str | None = None) -> dict[str, Any]:
    """Match two images for a quick look; write four files into the folder ``out`` -> the summary.

    ``features.h5`` (both images, named by file name) and ``matches.h5`` (the pair), in the layouts of
    :mod:`descnet.features.files`; ``matches.png`` (:func:`descnet.features.matching.draw_matches`, the caption
    naming the model, whether it is trained, and the counts); ``summary.json`` (keypoints, matches, inliers, the
    estimated geometry matrix -- keys ``model_found``, ``estimated_model`` --, seconds per stage, environment).
    Arguments as :func:`descnet.features.matching.match_pair`; ``ValueError`` for an image without keypoints.
    ``matcher_origin`` (where the matcher came from, :func:`descnet.features.options.recommended_match_options`)
    goes into the summary. All results are computed before anything is written.
    """
    from ..data.images import encode_image, read_image
    from ..io import result_set, write_json
    from ..runinfo import environment_info
    from .files import write_features, write_matches
    from .matching import draw_matches, match_pair

    from ..io import check_foreign_files
    from ..models import model_digest, resolve_model

    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    check_foreign_files(out, PAIR_DIR_FILES)  # before any work; result_set checks again
    model = resolve_model(model)
    timings: dict[str, float] = {}
    result = match_pair(image1, image2, model=model, keypoints1=keypoints1, keypoints2=keypoints2,
                        keypoint_options=keypoint_options, match_options=match_options, device=device,
                        timings=timings)
    for image, kp, feats in ((image1, keypoints1, result.features1), (image2, keypoints2, result.features2)):
        if len(feats) == 0:
            source = (f"keypoint file {kp} has no rows" if isinstance(kp, (str, os.PathLike))
                      else "the given keypoints are empty" if kp is not None
                      else f"the {keypoint_options.detector} detector found none")
            raise ValueError(f"{image}: no keypoints to match ({source})")
    names = unique_group_names([image1, image2])
    feats = [result.features1, result.features2]
    label, weights = feats[0].info["model"], feats[0].info["weights"]
    n_matches, n_inliers = len(result.matches), int(result.inliers.sum())
    caption = (f"{label} ({weights}) | keypoints {len(feats[0])} / {len(feats[1])} | matches {n_matches} | "
               f"inliers {n_inliers} ({match_options.geometry}, {match_options.estimator})")
    picture = draw_matches(read_image(image1), read_image(image2), result.points1, result.points2, result.inliers,
                           caption, draw_outliers=draw_outliers, max_lines=max_lines)
    png = encode_image(picture, ".png")
    matrix = result.geometry_matrix
    summary = {
        "image1": str(image1), "image2": str(image2), "names": names, "model": label, "weights": weights,
        "detector": feats[0].info["detector"], "keypoints": [len(feats[0]), len(feats[1])], "matches": n_matches,
        "inliers": n_inliers, **result.settings, "matcher_origin": matcher_origin, "model_found": matrix is not None,
        "estimated_model": None if matrix is None else matrix.tolist(), "caption": caption,
        "seconds": {**timings, "total": time.perf_counter() - start}, "environment": environment_info(device),
    }
    settings = descriptor_settings(label, keypoint_options, model_digest(model))
    feats = [replace(f, info={**f.info, "image_sha256": file_digest(image)})
             for f, image in zip(feats, (image1, image2))]
    with result_set(out) as staged:  # the four files of this run, or (after a failure or kill) the earlier ones
        write_features(staged.path("features.h5"), dict(zip(names, feats)), settings)
        write_matches(staged.path("matches.h5"),
                      {(names[0], names[1]): replace(result, features1=None, features2=None)}, result.settings)
        staged.path("matches.png").write_bytes(png)
        write_json(staged.path("summary.json"), summary)
    return summary
