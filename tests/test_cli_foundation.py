"""The console script: start-up cost, --help, `descnet models`."""
from __future__ import annotations

import json
import subprocess
import sys

from descnet.cli.main import main


def test_import_descnet_is_light():
    code = ("import sys, descnet; heavy = [m for m in ('torch', 'cv2', 'kornia', 'matplotlib', 'h5py') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_does_not_import_torch():
    code = ("import sys; from descnet.cli.main import build_parser; build_parser(); "
            "print([m for m in ('torch', 'cv2', 'kornia') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_models_command_lists_the_registry(capsys):
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = listing["architectures"]
    names = {r["name"] for r in rows}
    assert {"hardnet", "hardnet-csa", "hardnet-sa", "tfeat", "pixels", "hardtfeat", "hardnet8"} <= names
    csa = next(r for r in rows if r["name"] == "hardnet-csa")
    assert csa["options"]["num_bases"] == 32 and csa["dim"] == 128 and csa["spec"] == "hardnet-csa:WEIGHTS | hardnet-csa:random"
    trained = {r["name"]: r for r in listing["trained"]}
    assert listing["default"] == "descnet-hardnet-csa" and trained["descnet-hardnet-csa"]["default"]
    assert sum(r["default"] for r in trained.values()) == 1
    assert trained["tfeat-liberty"]["urls"][0].startswith("https://github.com/vbalnt/tfeat/")
    assert trained["hardnet-liberty"]["weights"] in ("download", "cached")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "descnet-hardnet-csa*" in out and "hardnet-csa" in out
