"""Benchmarks: FPR95 (Brown), the three HPatches tasks, image-sequence matching, SfM; tables and figures.

Each protocol is a function here; the ``descnet eval`` verbs parse arguments and call the ``benchmark_*`` ones
(which write the result folder). Names load lazily on first use::

    from descnet.eval import evaluate_brown, benchmark_hpatches
"""
from __future__ import annotations

from ..lazy import lazy_attributes

# imported eagerly (numpy only): the function shares its name with its module, and a lazy attribute would
# be shadowed by the submodule once anything imports ``descnet.eval.fpr95``
from .fpr95 import fpr95, fpr_at_recall

# public name -> module that defines it (PEP 562 lazy attributes)
_LAZY = {
    "BenchmarkRun": "descnet.eval.report",
    "evaluate_brown": "descnet.eval.brown",
    "benchmark_brown": "descnet.eval.brown",
    "average_precision": "descnet.eval.metrics",
    "roc_auc": "descnet.eval.metrics",
    "HPatchesDescriptors": "descnet.eval.descriptors",
    "read_descriptor_csvs": "descnet.eval.descriptors",
    "write_descriptor_csvs": "descnet.eval.descriptors",
    "describe_hpatches": "descnet.eval.hpatches",
    "benchmark_hpatches": "descnet.eval.hpatches_benchmark",
    "recommend_matcher": "descnet.eval.matcher_choice",
    "choose_matcher": "descnet.eval.matcher_choice",
    "describe_hpatches_cached": "descnet.eval.hpatches_benchmark",
    "model_signature": "descnet.eval.hpatches_benchmark",
    "evaluate_hpatches": "descnet.eval.hpatches",
    "evaluate_matching": "descnet.eval.hpatches",
    "evaluate_retrieval": "descnet.eval.hpatches",
    "evaluate_verification": "descnet.eval.hpatches",
    "generate_verification_pairs": "descnet.eval.hpatches",
    "matching_map": "descnet.eval.hpatches",
    "evaluate_sequences": "descnet.eval.sequences",
    "benchmark_sequences": "descnet.eval.sequences",
    "compare_sfm": "descnet.eval.sfm",
    "benchmark_pose": "descnet.eval.pose",
    "evaluate_pose": "descnet.eval.pose",
}

__all__ = sorted([*_LAZY, "fpr95", "fpr_at_recall"])


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
