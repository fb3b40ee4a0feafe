"""Export a descriptor model to TorchScript or ONNX, with a dynamic batch size, and check the file.

The exported graph is the inference form of the model (:func:`descnet.models.fusion.fuse_for_inference`:
BatchNorm folded, dropout removed, CSA fused), traced from a batch of 2. Its contract is the model's:
float32 patches ``(B, 1, P, P)`` in [0, 1] -> unit descriptors ``(B, D)``, any ``B``. Using the files::

    net = torch.jit.load("hardnet.pt")              # TorchScript: no descnet needed
    desc = net(torch.rand(10, 1, 32, 32))

    sess = onnxruntime.InferenceSession("hardnet.onnx")   # input "patches", output "descriptors"
    desc = sess.run(None, {"patches": np.random.rand(10, 1, 32, 32).astype(np.float32)})[0]

Every export is read back and run on a batch of another size (3 patches) against the PyTorch model
before it is moved into place: TorchScript always, ONNX with ONNX Runtime when installed (else the
``onnx`` checker, else not at all). A difference over :data:`TOLERANCE` is an error and writes nothing.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .contract import check_finite_descriptors, model_name
from .fusion import fuse_for_inference
from ..io import atomic_path

__all__ = ["FORMATS", "TOLERANCE", "DEFAULT_OPSET", "ExportResult", "export_model", "onnx_bytes",
           "trace_torchscript"]

FORMATS = ("torchscript", "onnx")
TOLERANCE = 1e-5
DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "patches", "descriptors"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how it was checked."""

    path: Path
    format: str
    max_difference: float | None  # max |exported - PyTorch| on the check batch; None when not run
    checked_with: str  # "torch.jit.load", "onnxruntime", "onnx.checker" or "nothing"


def _patch_size(model: nn.Module) -> int:
    return int(getattr(model, "patch_size", 32))


def _example(model: nn.Module, batch: int, seed: int) -> torch.Tensor:
    p = _patch_size(model)
    return torch.rand(batch, 1, p, p, generator=torch.Generator().manual_seed(seed))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's expected warnings (shape checks become constants; legacy ONNX exporter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def trace_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of an eval-mode model on a batch of 2 (the batch size stays dynamic)."""
    with _quiet(), torch.no_grad():
        return torch.jit.trace(model.eval(), _example(model, 2, 0), check_trace=False)


def onnx_bytes(model: nn.Module, patch_size: int | None = None, opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX graph of an eval-mode model, input ``patches (B, 1, P, P)``, output ``descriptors (B, D)``."""
    p = patch_size or _patch_size(model)
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(model.eval(), (torch.rand(2, 1, p, p),), buffer, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()


def _check_torchscript(path: Path, x: torch.Tensor, expected: torch.Tensor) -> tuple[float, str]:
    with _quiet():  # torch.jit.load warns that TorchScript is deprecated in favour of torch.export
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        got = loaded(x)
    if got.shape != expected.shape:
        raise ValueError(f"the exported model gives shape {tuple(got.shape)} for a batch of {len(x)}, not "
                         f"{tuple(expected.shape)} (a forward that leaves PyTorch, e.g. through NumPy or OpenCV, "
                         f"cannot be traced)")
    return float((got.float() - expected).abs().max()), "torch.jit.load"


def _check_onnx(path: Path, x: torch.Tensor, expected: torch.Tensor) -> tuple[float | None, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        try:
            import onnx
        except ImportError:
            return None, "nothing"
        onnx.checker.check_model(str(path))
        return None, "onnx.checker"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if INPUT_NAME not in [i.name for i in session.get_inputs()]:
        raise ValueError(f"the exported graph does not read its input '{INPUT_NAME}' (a forward that leaves "
                         f"PyTorch, e.g. through NumPy or OpenCV, cannot be exported)")
    got = session.run(None, {INPUT_NAME: x.numpy().astype(np.float32)})[0]
    return float(np.abs(got - expected.numpy()).max()), "onnxruntime"


def export_model(model: nn.Module, path: str | os.PathLike, format: str, *, fuse: bool = True,
                 opset: int = DEFAULT_OPSET, verify: bool = True) -> ExportResult:
    """Write ``model`` to ``path`` as ``format`` (``"torchscript"`` or ``"onnx"``), atomically.

    Args:
        fuse: export the inference form (:func:`~descnet.models.fusion.fuse_for_inference`); ``False`` traces
            the model as written (still in eval mode).
        opset: ONNX opset version.
        verify: read the file back and compare with the PyTorch model on 3 patches (see module docstring).

    Raises ``ValueError`` when the model cannot be exported or the check fails; an existing file at
    ``path`` is then left as it was.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule):
        raise TypeError(f"export needs an eager PyTorch model, got {type(model).__name__}")
    path = Path(path)
    reference = copy.deepcopy(model).eval().cpu()  # the caller's model is not changed
    graph = fuse_for_inference(reference) if fuse else reference
    x = _example(model, 3, 1)
    with torch.no_grad():
        expected = reference(x).float()
    check_finite_descriptors(expected, model_name(model))
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the name of the file to write")
    with atomic_path(path) as tmp:
        try:
            if format == "torchscript":
                trace_torchscript(graph).save(str(tmp))
            else:
                tmp.write_bytes(onnx_bytes(graph, _patch_size(model), opset))
        except (RuntimeError, torch.jit.Error, NotImplementedError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"cannot export the model to {format}: {first}") from err
        diff, checked = None, "nothing"
        if verify:
            check = _check_torchscript if format == "torchscript" else _check_onnx
            diff, checked = check(tmp, x, expected)
            if diff is not None and not diff <= TOLERANCE:
                raise ValueError(f"{path}: the exported {format} model differs from the PyTorch model by "
                                 f"{diff:.3g} (> {TOLERANCE:g}) on a batch of 3; nothing written (a forward that "
                                 f"leaves PyTorch, e.g. through NumPy or OpenCV, cannot be traced)")
    return ExportResult(path=path, format=format, max_difference=diff, checked_with=checked)
