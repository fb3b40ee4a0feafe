"""``descnet`` command line: a thin layer that parses arguments and calls the library.

Each verb lives in its own module of this package, with ``add_arguments(parser)`` and ``run(args) -> int``.
Modules import heavy libraries (torch, cv2) inside ``run`` so that ``descnet --help`` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# (verb, module, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("models", "descnet.cli.models", "list the registered models"),
]


class CommandError(Exception):
    """An error the user can fix; printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="descnet",
        description="Learn, evaluate and use local patch descriptors (HardNet/L2-Net with compressed "
                    "self-attention). A model SPEC is a registry name (hardnet-csa), NAME:WEIGHTS "
                    "(tfeat:tfeat-liberty.params), a descnet checkpoint or run directory, or a hand-crafted "
                    "baseline (sift, rootsift, pixels).")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb, module_name, summary in COMMANDS:
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or summary).strip()
        p = sub.add_parser(verb, help=summary, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        if p.get_default("func") is None:
            p.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("descnet: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, KeyError, OSError, TypeError) as err:
        if args.traceback or os.environ.get("DESCNET_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"descnet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
