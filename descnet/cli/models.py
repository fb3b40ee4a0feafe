"""List the models: trained weights by name (descnet's shipped ones, published ones downloaded on first use)
and the architectures of the registry.

A model SPEC on any command is a trained name from the first table, a baseline (sift, rootsift, pixels),
ARCH:WEIGHTS_FILE, ARCH:random (an untrained network, seed 0), a descnet checkpoint or a run directory.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    import json

    from descnet.models import create_model, list_models, model_entry
    from descnet.models.pretrained import DEFAULT_MODEL, PRETRAINED, SHIPPED_DIR
    from descnet.models.weights import weights_cache_dir

    trained = []
    for name, entry in PRETRAINED.items():
        if entry.shipped:
            status = "shipped" if (SHIPPED_DIR / entry.file).is_file() else "missing"
        else:
            status = "cached" if (weights_cache_dir() / entry.file).is_file() else "download"
        trained.append({"name": name, "default": name == DEFAULT_MODEL, "weights": status,
                        "summary": entry.summary, **entry.provenance, "urls": list(entry.urls)})
    architectures = []
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name)
        architectures.append({"name": name, "params": sum(p.numel() for p in model.parameters()),
                              "spec": name if not entry.trainable else f"{name}:WEIGHTS | {name}:random",
                              "dim": getattr(model, "descriptor_dim", None), "options": entry.defaults,
                              "summary": entry.summary})
    if args.json:
        print(json.dumps({"default": DEFAULT_MODEL, "trained": trained, "architectures": architectures},
                         indent=2, default=list))
        return 0
    width = max(len(r["name"]) for r in trained) + 2
    print("trained models (SPEC = the name; * = the default when no --model is given)")
    print(f"  {'name':<{width}}  {'weights':<8}  {'input':<9}  summary / training data / licence")
    for r in trained:
        mark = "*" if r["default"] else " "
        print(f"  {r['name'] + mark:<{width}}  {r['weights']:<8}  {r['resize']:<9}  {r['summary']}")
        print(f"  {'':<{width}}  {'':<8}  {'':<9}  data: {r['training_data']}; licence: {r['licence']}; "
              f"{r['paper']}")
    print("\narchitectures (learned ones need weights: ARCH:WEIGHTS_FILE, or ARCH:random for an untrained network)")
    width = max(len(r["name"]) for r in architectures)
    print(f"  {'name':<{width}}  {'params':>9}  {'dim':>5}  summary")
    for r in architectures:
        print(f"  {r['name']:<{width}}  {r['params']:>9,}  {r['dim'] or '':>5}  {r['summary']}")
    print(f"\npublished weights download into {weights_cache_dir()} (DESCNET_CACHE changes it); "
          f"input: the resize convention the weights were trained with")
    return 0
