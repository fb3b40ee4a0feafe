"""``descnet`` command line: a thin layer that parses arguments and calls the library.

Each verb lives in its own module of this package, with ``add_arguments(parser)`` and ``run(args) -> int``.
Modules import heavy libraries (torch, cv2) inside ``run`` so that ``descnet --help`` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

# (verb, module, one-line help); a verb group is (verb, [(sub-verb, module, help), ...], help)
COMMANDS: list[tuple] = [
    ("demo", "descnet.cli.demo", "the whole workflow on synthetic data, in minutes on a CPU (no downloads)"),
    ("models", "descnet.cli.models", "list the registered models"),
    ("train", "descnet.cli.train", "train a descriptor from a YAML config (checkpoints, resume, DDP)"),
    ("describe", "descnet.cli.describe", "describe the keypoints of images or a folder into an HDF5 features file"),
    ("pairs", "descnet.cli.pairs", "make a pair list (exhaustive or sequential) of a features file or image folder"),
    ("match", "descnet.cli.match", "match two images (picture, summary) or a pair list of a features file"),
    ("reconstruct", "descnet.cli.reconstruct", "structure from motion with COLMAP (pycolmap) from features + matches"),
    ("export", "descnet.cli.export", "export a model to TorchScript or ONNX (dynamic batch, checked)"),
    ("data", [
        ("download", "descnet.cli.data_download", "download and unpack Brown, HPatches, HPatches sequences/tasks"),
        ("synth", "descnet.cli.data_synth", "synthesise image sequences with exact homographies (HPatches layout)"),
        ("patches", "descnet.cli.data_patches", "build HPatches-style (and Brown) patch sets from image sequences"),
    ], "download datasets, synthesise sequences, build patch sets"),
    ("eval", [
        ("brown", "descnet.cli.eval_brown", "Brown (UBC Phototour) FPR95 on the test pairs, ROC curves"),
        ("hpatches", "descnet.cli.eval_hpatches", "HPatches verification, matching, retrieval mAP; tables, figure"),
        ("sequences", "descnet.cli.eval_sequences", "image matching on sequences: MMA, homography accuracy"),
        ("sfm", "descnet.cli.eval_sfm", "compare descriptors by COLMAP reconstructions of one image folder"),
        ("pose", "descnet.cli.eval_pose", "relative pose against ground truth: SuperGlue's AUC@5/10/20 (Strecha, pairs)"),
    ], "benchmarks: Brown FPR95, HPatches tasks, image-sequence matching, structure from motion, relative pose"),
]


#: errors a user can fix (a bad argument or file, a missing optional package): one line, exit status 2.
#: Anything else is a bug and shows its traceback.
USER_ERRORS = (ValueError, KeyError, OSError, ModuleNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="descnet",
        description="Learn, evaluate and use local patch descriptors (HardNet/L2-Net with compressed "
                    "self-attention). A model SPEC is a registry name (hardnet-csa), NAME:WEIGHTS "
                    "(tfeat:tfeat-liberty.params), a descnet checkpoint or run directory, or a hand-crafted "
                    "baseline (sift, rootsift, pixels).")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    _add_commands(parser, COMMANDS, "command")
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: list[tuple], dest: str) -> None:
    sub = parser.add_subparsers(dest=dest, metavar="COMMAND", required=True)
    for verb, target, summary in commands:
        if isinstance(target, list):  # a group of sub-verbs
            if not target:
                continue
            group = sub.add_parser(verb, help=summary, description=summary)
            _add_commands(group, target, f"{dest}_{verb}")
            continue
        module = importlib.import_module(target)
        doc = (module.__doc__ or summary).strip()
        p = sub.add_parser(verb, help=summary, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)


def run_command(prog: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                traceback: bool = False) -> int:
    """Run a verb: its exit status; a user error (:data:`USER_ERRORS`) as one line ``PROG: error: ...`` and
    status 2 (the traceback with ``--traceback`` or ``DESCNET_TRACEBACK=1``); Ctrl-C as status 130."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if traceback or os.environ.get("DESCNET_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(f"descnet {_verb_path(args)}", args.func, args, args.traceback)


def _verb_path(args: argparse.Namespace) -> str:
    """``data download`` for ``descnet data download ...``: the verbs the user typed."""
    words, dest = [], "command"
    while getattr(args, dest, None):
        words.append(getattr(args, dest))
        dest = f"{dest}_{words[-1]}"
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
