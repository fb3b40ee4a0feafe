"""Guards against silently wrong results and clean errors instead of tracebacks (issue 15)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from descnet.cli.main import main
from descnet.features.inference import check_device, describe_patches
from descnet.models.contract import NonFiniteDescriptorsError
from descnet.models import create_model


def _poisoned(tmp_path: Path) -> Path:
    """A descnet checkpoint of tfeat whose first convolution is NaN."""
    model = create_model("tfeat")
    state = model.state_dict()
    state[next(iter(state))].fill_(float("nan"))
    ckpt = {"descnet": 1, "model": {"name": "tfeat", "options": dict(model.descnet_options)}, "state_dict": state}
    torch.save(ckpt, tmp_path / "nan.pt")
    return tmp_path / "nan.pt"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.filterwarnings("ignore")
def test_non_finite_descriptors_are_refused_naming_the_model(tmp_path):
    from descnet.models import resolve_model

    model = resolve_model("tfeat:random")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))  # weights broken in memory (the Python API)
    spec = "tfeat:random"
    patches = np.random.default_rng(0).integers(0, 255, (5, 32, 32), dtype=np.uint8)
    for backend in ("eager", "fused"):
        with pytest.raises(NonFiniteDescriptorsError, match=rf"model {spec}: 5 of 5 descriptors are not finite"):
            describe_patches(model, patches, backend=backend)


def test_describe_and_export_refuse_a_poisoned_checkpoint(tmp_path, capsys):
    import cv2

    spec = str(_poisoned(tmp_path))
    image = (np.random.default_rng(1).random((96, 96)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    assert main(["describe", str(tmp_path / "a.png"), "--model", spec, "--out", str(tmp_path / "f.h5"),
                 "--quiet"]) == 2
    assert f"{spec}: non-finite (NaN or inf) weights in features.1.weight" in _error(capsys)
    assert not (tmp_path / "f.h5").exists()
    assert main(["export", "--model", f"tfeat:{spec}", "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 2
    assert "non-finite (NaN or inf) weights" in _error(capsys) and not (tmp_path / "m.pt").exists()


def test_export_refuses_non_finite_outputs_naming_the_model(tmp_path):
    from descnet.models.export import export_model
    from descnet.models import resolve_model

    model = resolve_model("tfeat:random")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteDescriptorsError, match=r"model tfeat:random: 3 of 3 descriptors are not finite"):
        export_model(model, tmp_path / "m.pt", "torchscript")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable GPU")
def test_device_cuda_without_cuda_is_a_clean_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"device cuda: CUDA is not available: .*; use cpu"):
        describe_patches(create_model("tfeat"), np.zeros((2, 32, 32), np.uint8), device="cuda")
    with pytest.raises(ValueError, match=r"--device nonsense: not a torch device"):
        check_device("nonsense", "--device")
    assert main(["describe", str(tmp_path), "--device", "cuda", "--out", str(tmp_path / "f.h5")]) == 2
    assert "describe: error: --device cuda: CUDA is not available" in _error(capsys)


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    assert main(["describe", str(tmp_path), "--out", str(tmp_path / "afile" / "x.h5")]) == 2
    assert f"--out {tmp_path / 'afile' / 'x.h5'}: {tmp_path / 'afile'} is a file, not a folder" in _error(capsys)
    (tmp_path / "dir").mkdir()
    assert main(["export", "--model", "tfeat:random", "--format", "onnx", "--out", str(tmp_path / "dir")]) == 2
    assert f"--out {tmp_path / 'dir'}: is a folder" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dir"] and not any((tmp_path / "dir").iterdir())


def test_folders_descnet_creates_get_the_umask(tmp_path):
    from descnet.io import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_synth_size_is_limited_up_front(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--size", "100000x100000"]) == 2
    assert "--size 100000x100000: each side must be from 64 to 4096 pixels" in _error(capsys)
    assert not (tmp_path / "s").exists()
    from descnet.data.synth import SynthOptions

    with pytest.raises(ValueError, match="size 5000x64: at most 4096 pixels a side"):
        SynthOptions(size=(5000, 64))


@pytest.mark.parametrize("verb", [["eval", "hpatches", "--descriptors", "x"], ["eval", "brown", "--root", "x",
                                                                               "--subset", "y", "--model", "pixels"],
                                  ["eval", "sequences", "--root", "x"]])
def test_eval_out_that_is_a_file_is_refused_up_front(tmp_path, capsys, verb):
    (tmp_path / "afile").write_text("mine")
    assert main([*verb, "--out", str(tmp_path / "afile")]) == 2
    assert f"--out {tmp_path / 'afile'}: exists and is not a folder" in _error(capsys)
    assert main([*verb, "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert f"{tmp_path / 'afile'} is a file, not a folder" in _error(capsys)


def test_data_outputs_under_a_file_are_refused_up_front(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    assert main(["data", "synth", "--out", str(tmp_path / "afile" / "s"), "--sequences", "1"]) == 2
    assert f"{tmp_path / 'afile'} is a file, not a folder" in _error(capsys)
    assert main(["data", "patches", "--sequences", str(tmp_path), "--out", str(tmp_path / "afile" / "p")]) == 2
    assert f"--out {tmp_path / 'afile' / 'p'}: {tmp_path / 'afile'} is a file, not a folder" in _error(capsys)
