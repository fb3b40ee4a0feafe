"""descnet export: TorchScript and ONNX files give the PyTorch model's descriptors, any batch size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from descnet.cli.main import main
from descnet.models.export import export_model
from descnet.features.inference import onnxruntime_available
from descnet.models import create_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and attention gammas, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            if isinstance(getattr(m, "gamma", None), torch.nn.Parameter):
                m.gamma.fill_(0.7)
    return model


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: randomise(create_model(name), seed=1).eval() for name in ("hardnet", "hardnet-csa")}


def _expected(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name,fuse", [("hardnet", True), ("hardnet-csa", True), ("hardnet", False)])
def test_torchscript_export_matches_for_any_batch(tmp_path, models, name, fuse):
    model = models[name]
    result = export_model(model, tmp_path / "net.pt", "torchscript", fuse=fuse)
    assert result.checked_with == "torch.jit.load" and result.max_difference <= 1e-5
    loaded = torch.jit.load(str(tmp_path / "net.pt"))
    for batch in (1, 7):
        x = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            got = loaded(x)
        assert got.shape == (batch, 128)
        torch.testing.assert_close(got, _expected(model, x), atol=1e-5, rtol=0)


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime (optional extra) not installed")
@pytest.mark.parametrize("name", ["hardnet", "hardnet-csa"])
def test_onnx_export_matches_for_any_batch(tmp_path, models, name):
    import onnxruntime as ort

    model = models[name]
    result = export_model(model, tmp_path / "net.onnx", "onnx")
    assert result.checked_with == "onnxruntime" and result.max_difference <= 1e-5
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["patches"]
    assert [o.name for o in session.get_outputs()] == ["descriptors"]
    for batch in (1, 9):
        x = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(batch))
        got = session.run(None, {"patches": x.numpy()})[0]
        assert got.shape == (batch, 128)
        np.testing.assert_allclose(got, _expected(model, x).numpy(), atol=1e-5, rtol=0)


def test_cli_exports_a_checkpoint_spec(tmp_path, models, capsys):
    model = models["hardnet-csa"]
    ckpt = tmp_path / "best.pt"
    torch.save({"descnet": 1, "model": {"name": "hardnet-csa", "options": {}},
                "state_dict": model.state_dict()}, ckpt)
    out = tmp_path / "out" / "csa.pt"
    assert main(["export", "--model", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    assert "checked with torch.jit.load" in capsys.readouterr().out
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_model_that_cannot_be_traced_fails_and_keeps_the_old_file(tmp_path, capsys, fmt):
    out = tmp_path / f"sift.{fmt}"
    out.write_text("previous export")
    # SIFT runs OpenCV on NumPy arrays: tracing sees constants, which the read-back check catches
    assert main(["export", "--model", "sift", "--format", fmt, "--out", str(out)]) == 2
    assert "cannot be" in capsys.readouterr().err
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_bad_spec_and_format_are_rejected(tmp_path, capsys):
    assert main(["export", "--model", "no-such-model", "--format", "onnx", "--out", str(tmp_path / "x")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["export", "--model", "hardnet", "--format", "tflite", "--out", str(tmp_path / "x")])
    assert err.value.code == 2
    with pytest.raises(ValueError, match="format"):
        export_model(create_model("hardnet"), tmp_path / "x", "tflite")
    assert not any(tmp_path.iterdir())
