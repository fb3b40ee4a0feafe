"""``auto`` = the fastest backend here: measured once, cached per machine, model and versions, trusted by content."""
from __future__ import annotations

import json

import pytest
import torch

from descnet.features import backend_choice, inference
from descnet.features.backend_choice import backend_key, choose_backend, read_choice
from descnet.features.inference import PatchDescriber, measure_backends, model_signature
from descnet.models import create_model

CANDIDATES = ("fused", "onnxruntime")
needs_ort = pytest.mark.skipif(not inference.onnxruntime_available(), reason="onnxruntime is not installed")


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """Measurement on (tests run with the rule: conftest), the cache in a temporary folder."""
    monkeypatch.delenv(backend_choice.AUTO_BACKEND_ENV, raising=False)
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / backend_choice.CACHE_NAME


def key(threads: int = 2, model: str = "abc") -> dict:
    return backend_key("AMD EPYC 9R14", "AVX2", threads, model, {"torch": "2.13.0", "onnxruntime": "1.22"})


def never() -> dict:
    raise AssertionError("measured although the cache holds the answer")


def test_the_key_names_machine_model_and_versions():
    k = key()
    assert {k["cpu"], k["cpu_kind"], k["threads"], k["model"]} == {"AMD EPYC 9R14", "AVX2", 2, "abc"}
    assert k["versions"] == {"onnxruntime": "1.22", "torch": "2.13.0"}
    # the architecture counts, the weights do not
    torch.manual_seed(0)
    a, b = create_model("hardnet"), create_model("hardnet")
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    assert model_signature(a) == model_signature(b) != model_signature(create_model("hardnet-csa"))


@pytest.mark.parametrize("seconds, expected", [({"fused": 2.0, "onnxruntime": 1.0}, "onnxruntime"),
                                               ({"fused": 1.0, "onnxruntime": 1.5}, "fused")])
def test_the_faster_backend_is_chosen_and_remembered(measuring, seconds, expected):
    assert choose_backend(key(), CANDIDATES, lambda: seconds, rule="fused") == expected
    stored = json.loads(measuring.read_text())
    (entry,) = stored["entries"].values()
    assert entry["backend"] == expected and entry["seconds"] == seconds and entry["key"] == key()
    assert choose_backend(key(), CANDIDATES, never, rule="fused") == expected  # from the cache
    # another thread count or model is another situation: measured again
    other = {"fused": 1.0, "onnxruntime": 3.0}
    assert choose_backend(key(threads=4), CANDIDATES, lambda: other, rule="onnxruntime") == "fused"
    assert choose_backend(key(model="def"), CANDIDATES, lambda: other, rule="onnxruntime") == "fused"
    assert len(json.loads(measuring.read_text())["entries"]) == 3


@pytest.mark.parametrize("damage", ["not json {", "[]", '{"format": 1, "entries": []}', "tampered key",
                                    "backend not the fastest", "unknown backend", "negative time"])
def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(measuring, damage):
    choose_backend(key(), CANDIDATES, lambda: {"fused": 2.0, "onnxruntime": 1.0}, rule="fused")
    data = json.loads(measuring.read_text())
    (digest, entry), = data["entries"].items()
    if damage == "tampered key":  # same digest, another key: not this situation
        entry["key"]["threads"] = 64
    elif damage == "backend not the fastest":
        entry["backend"] = "fused"
    elif damage == "unknown backend":
        entry["backend"] = "compile"
        entry["seconds"] = {"compile": 0.1}
    elif damage == "negative time":
        entry["seconds"]["onnxruntime"] = -1.0
    text = damage if damage.startswith(("not json", "[", "{")) else json.dumps(data)
    measuring.write_text(text)
    assert read_choice(key(), CANDIDATES, measuring) is None
    assert choose_backend(key(), CANDIDATES, lambda: {"fused": 1.0, "onnxruntime": 2.0}, rule="onnxruntime") == "fused"
    assert read_choice(key(), CANDIDATES, measuring) == "fused"  # replaced by a valid entry


def test_the_rule_decides_when_nothing_can_be_measured(measuring, monkeypatch):
    def broken() -> dict:
        raise RuntimeError("no timer")

    assert choose_backend(key(), CANDIDATES, broken, rule="onnxruntime") == "onnxruntime"
    assert choose_backend(key(), CANDIDATES, lambda: {}, rule="fused") == "fused"
    assert not measuring.exists()
    monkeypatch.setenv(backend_choice.AUTO_BACKEND_ENV, "rule")
    assert choose_backend(key(), CANDIDATES, never, rule="fused") == "fused"


@needs_ort
@pytest.mark.parametrize("faster", CANDIDATES)
def test_auto_describes_with_the_measured_backend(measuring, monkeypatch, faster):
    monkeypatch.setattr(inference, "cpu_kind", lambda: "AVX2")  # the rule would say "fused"
    fake = {"fused": 1.0, "onnxruntime": 1.0}
    fake[faster] = 0.5
    monkeypatch.setattr(inference, "measure_backends", lambda *args, **kwargs: fake)
    torch.manual_seed(0)
    assert PatchDescriber(create_model("hardnet")).backend == faster
    assert read_choice(json.loads(measuring.read_text())["entries"].popitem()[1]["key"], CANDIDATES, measuring) \
        == faster


@needs_ort
def test_measure_backends_times_both():
    torch.manual_seed(0)
    seconds = measure_backends(create_model("hardnet"), patches=64, rounds=1)
    assert set(seconds) == set(CANDIDATES) and all(0 < v < 30 for v in seconds.values())
    assert set(measure_backends(create_model("pixels"), patches=8, rounds=1)) == {"fused"}  # ONNX cannot take it
