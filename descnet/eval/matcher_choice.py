"""Each model's recommended matcher, chosen on image pairs with ground-truth homographies (its training data).

The rule (docs/protocols.md, "Recommended matcher"):

1. On the pairs ``(1, k)`` of the given sequences, keypoints are detected once per image (OpenCV SIFT, the
   same for every descriptor) and described by the model and by OpenCV's RootSIFT.
2. Each candidate -- mutual nearest neighbours (``mnn``) and ``smnn`` with ratio ``r`` in
   :data:`CANDIDATE_RATIOS` -- matches every pair (:func:`descnet.features.matching.match`); a match is
   *correct* when its image-1 keypoint mapped by the ground truth lands within :data:`CORRECT_PX` pixels of
   its image-k keypoint (counted before geometric verification, as ``eval sequences`` counts correct@3).
   Matches and correct matches are summed over all pairs.
3. The recommendation is the candidate with the **largest margin of correct over wrong matches**
   (``correct - (matches - correct)``; ties: the more precise): loosening the ratio test further would add
   more wrong matches than correct ones. The rule has no parameter to tune, favours the correct matches a
   robust estimator needs, and stops where the added matches are mostly wrong.

RootSIFT (OpenCV, the same keypoints) goes through the same curve for reference: its figures at Lowe's smnn
0.8 (:data:`descnet.features.options.LOWE_MATCHING`, what SIFT and RootSIFT keep) and the candidate the rule
would give it are recorded beside the model's.

Never run it on evaluation scenes (the model cards name them): the choice is part of the model.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from descnet.features.options import LOWE_MATCHING, KeypointOptions

__all__ = ["CANDIDATE_RATIOS", "CORRECT_PX", "CHOICE_RULE", "matcher_candidates", "matcher_curve",
           "choose_matcher", "recommend_matcher"]

#: ratio thresholds tried with smnn (mnn is tried too: the same as ratio 1)
CANDIDATE_RATIOS = tuple(round(0.70 + 0.02 * i, 2) for i in range(15))
#: a match is correct within this many pixels of the ground truth
CORRECT_PX = 3.0
CHOICE_RULE = ("the candidate (mnn; smnn 0.70, 0.72, .., 0.98) with the largest margin of correct (@3 px) over wrong "
               "matches, summed over the pairs")


def matcher_candidates() -> list[tuple[str, float | None]]:
    """``[("smnn", 0.70), ..., ("smnn", 0.98), ("mnn", None)]``."""
    return [("smnn", r) for r in CANDIDATE_RATIOS] + [("mnn", None)]


def matcher_curve(pairs: Iterable[tuple[Any, Any, np.ndarray]],
                  candidates: list[tuple[str, float | None]]) -> list[dict[str, Any]]:
    """Correct matches and precision of each candidate over ``pairs``.

    ``pairs``: ``(features1, features2, H_1_k)`` with :class:`descnet.features.files.Features`-like
    objects (``descriptors (N, D)``, ``keypoints (N, 2+)``). Returns one dict per candidate: ``matcher``,
    ``ratio``, ``matches`` and ``correct`` (sums over the pairs), ``precision``.
    """
    from descnet.eval.sequences import reprojection_errors
    from descnet.features.matching import match

    totals = [[0, 0] for _ in candidates]
    for f1, f2, homography in pairs:
        for slot, (matcher, ratio) in zip(totals, candidates):
            m = match(f1.descriptors, f2.descriptors, matcher=matcher, ratio=ratio)
            errors = reprojection_errors(f1.keypoints[m.indices[:, 0], :2], f2.keypoints[m.indices[:, 1], :2],
                                         homography)
            slot[0] += len(errors)
            slot[1] += int((errors <= CORRECT_PX).sum())
    return [{"matcher": matcher, "ratio": ratio, "matches": n, "correct": c, "precision": c / n if n else 0.0}
            for (matcher, ratio), (n, c) in zip(candidates, totals)]


def choose_matcher(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The module docstring's rule on a :func:`matcher_curve`: the row with the largest ``correct - wrong``
    (``2 * correct - matches``); ties go to the more precise row."""
    if not curve:
        raise ValueError("no candidates to choose from")
    return max(curve, key=lambda row: (2 * row["correct"] - row["matches"], row["precision"]))


def recommend_matcher(sequences: Iterable[Any], model: Any, keypoint_options: KeypointOptions = KeypointOptions(),
                      device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Choose ``model``'s matcher on the pairs ``(1, k)`` of ``sequences`` (module docstring).

    ``sequences``: :class:`descnet.data.sequences.ImageSequence` objects (``name``, ``targets``,
    ``image(k, gray=True)``, ``homographies[k]``). Returns the record stored in the weights' ``info["matching"]``
    and the model card: ``matcher``, ``ratio``, ``rule``, the chosen row's ``correct``/``matches``/``precision``,
    ``sequences``, ``pairs``, ``keypoints``, the whole ``curve``, and RootSIFT's: ``rootsift_lowe`` (its row at
    smnn 0.8) and ``rootsift_choice`` (the row the rule picks for it).
    """
    from descnet.features.description import describe_images
    from descnet.features.keypoints import detect_keypoints
    from descnet.models import resolve_model

    model = resolve_model(model)
    rootsift = resolve_model("opencv-rootsift")
    kp = keypoint_options
    pairs_model, pairs_sift, names = [], [], []
    sequences = list(sequences)
    iterator = sequences
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(sequences, desc="matcher choice", unit="seq")
    for seq in iterator:
        ids = [1, *seq.targets]
        images = [seq.image(k, gray=True) for k in ids]
        keypoints = [detect_keypoints(image, detector=kp.detector, max_keypoints=kp.max_keypoints)[0]
                     for image in images]
        mine = dict(zip(ids, describe_images(images, keypoints, model=model, options=kp, device=device)))
        sift = dict(zip(ids, describe_images(images, keypoints, model=rootsift, options=kp)))
        for k in seq.targets:
            pairs_model.append((mine[1], mine[k], seq.homographies[k]))
            pairs_sift.append((sift[1], sift[k], seq.homographies[k]))
        names.append(seq.name)
    if not pairs_model:
        raise ValueError("no image pairs to choose a matcher on")
    sift_curve = matcher_curve(pairs_sift, matcher_candidates())
    lowe = next(r for r in sift_curve
                if r["matcher"] == LOWE_MATCHING["matcher"] and r["ratio"] == LOWE_MATCHING["ratio"])
    curve = matcher_curve(pairs_model, matcher_candidates())
    chosen = choose_matcher(curve)
    return {"matcher": chosen["matcher"], "ratio": chosen["ratio"], "rule": CHOICE_RULE,
            "correct": chosen["correct"], "matches": chosen["matches"], "precision": chosen["precision"],
            "rootsift_lowe": lowe, "rootsift_choice": choose_matcher(sift_curve),
            "sequences": names, "pairs": len(pairs_model),
            "keypoints": {"detector": kp.detector, "max_keypoints": kp.max_keypoints}, "curve": curve}
