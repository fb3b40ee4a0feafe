"""List the registered models with their parameter counts and default options.

A model SPEC on any command is one of these names, NAME:WEIGHTS, a descnet checkpoint or a run directory.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from descnet.models import create_model, list_models, model_entry

    rows = []
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"name": name, "params": params, "trainable": entry.trainable,
                     "dim": getattr(model, "descriptor_dim", None), "options": entry.defaults,
                     "summary": entry.summary})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'params':>9}  {'dim':>5}  summary")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['params']:>9,}  {r['dim'] or '':>5}  {r['summary']}")
    return 0
