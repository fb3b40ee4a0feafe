"""Precision follows the hardware: runtime.amp=auto resolves by the CPU's native bf16 support (queried from
torch, monkeypatched here) or the GPU; explicit bf16 on an emulating CPU warns; every shipped config and the
demo ask for auto; the trainer records the choice."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from descnet import precision
from descnet.precision import cpu_kind, resolve_amp
from descnet.training.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _cpu(monkeypatch, capability: str, onednn_bf16: bool, avx512_bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(precision, "_onednn_bf16", lambda: onednn_bf16)
    flags = {"_is_avx512_bf16_supported": avx512_bf16, "_is_amx_tile_supported": amx}
    monkeypatch.setattr(precision, "_flag", lambda name: flags[name])


def test_avx2_cpu_gets_float32(monkeypatch):
    _cpu(monkeypatch, "AVX2", onednn_bf16=False, avx512_bf16=False)
    assert cpu_kind() == "AVX2"
    chosen = resolve_amp("auto", "cpu")
    assert chosen.amp == "none" and chosen.dtype is None and "AVX2" in chosen.reason


def test_avx512_bf16_cpu_gets_bf16(monkeypatch):
    _cpu(monkeypatch, "AVX512", onednn_bf16=True, avx512_bf16=True)
    assert cpu_kind() == "AVX512_BF16"
    chosen = resolve_amp("auto", "cpu")
    assert chosen.amp == "bf16" and chosen.dtype is torch.bfloat16


def test_amx_cpu_gets_bf16(monkeypatch):
    _cpu(monkeypatch, "AVX512", onednn_bf16=True, avx512_bf16=True, amx=True)
    assert cpu_kind() == "AMX" and resolve_amp("auto", "cpu").amp == "bf16"


def test_avx512_without_bf16_or_limited_isa_gets_float32(monkeypatch):
    _cpu(monkeypatch, "AVX512", onednn_bf16=True, avx512_bf16=False)  # e.g. Skylake-X: emulated bf16
    assert cpu_kind() == "AVX512" and resolve_amp("auto", "cpu").amp == "none"
    _cpu(monkeypatch, "AVX512", onednn_bf16=False, avx512_bf16=True)  # ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU
    assert cpu_kind() == "AVX512" and resolve_amp("auto", "cpu").amp == "none"
    _cpu(monkeypatch, "AVX2", onednn_bf16=True, avx512_bf16=True)  # ATEN_CPU_CAPABILITY=avx2
    assert cpu_kind() == "AVX2" and resolve_amp("auto", "cpu").amp == "none"


def test_explicit_bf16_on_an_emulating_cpu_runs_but_warns(monkeypatch):
    _cpu(monkeypatch, "AVX2", onednn_bf16=False, avx512_bf16=False)
    with pytest.warns(RuntimeWarning, match="15-20x slower"):
        chosen = resolve_amp("bf16", "cpu")
    assert chosen.amp == "bf16"
    _cpu(monkeypatch, "AVX512", onednn_bf16=True, avx512_bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_amp("bf16", "cpu").amp == "bf16"  # native: no warning
    assert resolve_amp("none", "cpu").amp == "none"
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        resolve_amp("fp16", "cpu")
    with pytest.raises(ValueError, match="runtime.amp must be one of"):
        resolve_amp("fp32", "cpu")


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_follows_the_device(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Test GPU")
    chosen = resolve_amp("auto", "cuda:0")
    assert chosen.amp == ("bf16" if bf16 else "fp16") and "Test GPU" in chosen.reason
    assert resolve_amp("fp16", "cuda:0").amp == "fp16"


def test_the_real_machine_resolves_consistently():
    kind = cpu_kind()
    assert kind in ("AMX", "AVX512_BF16", "AVX512", "AVX2", "DEFAULT", "VSX", "ZVECTOR", "SVE256", "NO AVX")
    assert resolve_amp("auto", "cpu").amp == ("bf16" if kind in ("AMX", "AVX512_BF16") else "none")


def test_every_shipped_config_and_the_demo_use_auto():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        assert load_config(path)["runtime"]["amp"] == "auto", path.name
        raw = yaml.safe_load(path.read_text()) or {}
        assert raw.get("runtime", {}).get("amp", "auto") == "auto", path.name
    from descnet.cli.demo_driver import TRAIN_OVERRIDES

    assert TRAIN_OVERRIDES["runtime"]["amp"] == "auto"
