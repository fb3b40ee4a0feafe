"""The configs ship with the package: one copy (descnet/configs; configs/ links to it), found by name, in the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from descnet.training.config import CONFIG_DIR, config_path, load_config, shipped_configs

REPO = Path(__file__).resolve().parents[1]


def test_one_copy_of_the_configs():
    assert CONFIG_DIR == REPO / "descnet" / "configs"
    assert (REPO / "configs").resolve() == CONFIG_DIR.resolve()  # the repository's configs/ is the package's
    assert sorted(p.stem for p in (REPO / "configs").glob("*.yaml")) == shipped_configs()
    assert {"hardnet", "hardnet+", "hardnet-csa+", "descnet-hardnet-csa"} <= set(shipped_configs())


def test_configs_resolve_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # away from the repository
    for name in ("hardnet+", "hardnet+.yaml"):
        assert config_path(name) == CONFIG_DIR / "hardnet+.yaml"
        assert load_config(name) == load_config(CONFIG_DIR / "hardnet+.yaml")
    assert load_config("ablation-csa-bases8")["model"]["options"]["num_bases"] == 8  # its base: chain resolves
    (tmp_path / "hardnet+").write_text("optimizer: {lr: 3}\n")  # a file of that name wins over the shipped one
    assert load_config("hardnet+")["optimizer"]["lr"] == 3
    with pytest.raises(FileNotFoundError, match=r"nope: no such config file, nor a shipped config \(shipped: .*hardnet\+"):
        load_config("nope")
    with pytest.raises(FileNotFoundError, match="sub/hardnet.yaml: no such config file"):
        load_config("sub/hardnet.yaml")  # a path with folders is never looked up in the package


def test_wheel_ships_the_configs_and_finds_them(tmp_path):
    """Build the wheel from a copy of the sources (setuptools of this environment, no network), check that it
    holds the configs and the shipped weights, and load a config by name from the unpacked wheel."""
    pytest.importorskip("setuptools", minversion="77")  # the build backend pyproject.toml names (the [test] extra)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "descnet", src / "descnet", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "dist")], cwd=src, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("descnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"descnet/configs/{n}.yaml" for n in shipped_configs()}
    assert shipped and shipped <= names
    assert {"descnet/weights/descnet-hardnet-csa.pt", "descnet/weights/descnet-hardnet.pt"} <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import descnet.training.config as c; cfg = c.load_config('hardnet-csa+'); "
            "print(c.CONFIG_DIR); print(cfg['model']['name'])")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(site / "descnet" / "configs"), "hardnet-csa"]
