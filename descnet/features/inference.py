"""The inference path: many patches -> descriptors, batched, fast, in eval mode.

Every command that describes patches (``describe``, ``match``, ``eval``, the benchmarks) goes through
:func:`describe_patches`. It never changes the model it is given: it describes with a *prepared copy*
(:class:`PatchDescriber`), built once per model, device, backend and precision and rebuilt when the
model's weights change.

Backends (``backend=``):

* ``"eager"``: the model as written, eval mode, ``torch.inference_mode``.
* ``"fused"``: :func:`fuse_for_inference` (BatchNorm folded into the convolution before it, dropout
  removed, CSA blocks replaced by :class:`FusedCSA`), pure PyTorch, on any device and precision.
* ``"onnxruntime"``: the fused model exported to ONNX in memory and run by ONNX Runtime (CPU, float32;
  needs the optional ``onnxruntime`` package). Batches run in parallel, one per core
  (``torch.get_num_threads()`` workers, each session call on one thread): for a network this small, data
  parallelism beats ONNX Runtime's intra-op threads (no synchronisation after every node, and each
  worker's activations stay in its own core's cache): hardnet-csa 1.2x faster on 2 cores.
* ``"compile"``: ``torch.compile`` of the fused model with inductor's weight freezing; compiling takes a
  minute on a small CPU, so it is used only when asked for.
* ``"auto"`` (default, :func:`choose_auto_backend`): on the CPU in float32 with ONNX Runtime installed, whichever of
  ``"fused"`` and ``"onnxruntime"`` is faster *on this machine for this model*: measured on first use (a few
  batches each, :func:`measure_backends`, about 2-4 s) and remembered in descnet's cache folder per CPU model and
  kind, thread count, model architecture and torch / ONNX Runtime versions
  (:mod:`descnet.features.backend_choice`). Jobs under :data:`ONNX_MIN_PATCHES` patches, GPUs, bfloat16, and
  machines where nothing can be measured (or ``DESCNET_AUTO_BACKEND=rule``) follow the rule :func:`auto_backend`:
  ONNX Runtime on AVX-512 CPUs, the fused PyTorch model on AVX2-only CPUs (on one real AVX2 EPYC ONNX Runtime was
  faster, on another ``hardnet-csa`` took 1.65x the time of ``hardnet`` there: which is faster depends on the
  machine, hence the measurement).

A backend that cannot handle a model (export fails, or its output on a probe batch differs from the
eager model's by more than 1e-4) falls back to ``"fused"``, then to ``"eager"``, with a warning when the
backend was asked for by name. All backends agree with the eager model to about 1e-6 in float32.
``precision="bfloat16"`` runs the fused model in bfloat16 (``"eager"``/``"fused"``/``"compile"``;
about 1e-2 from float32), returning float32 descriptors.

Batch sizes: on the CPU, PyTorch tensors over ~8 MB get fresh memory pages from the OS on every call
(glibc ``mmap``), which can cost more than the arithmetic of a small CNN, and CSA's ``(G*M, N)`` maps
should stay in cache; :func:`default_batch_size` is 32 patches there (a 4 MB 32x32x32 activation),
128 per worker for a plain CNN under ONNX Runtime (its memory arena reuses buffers; fewer, larger calls)
and 16 for a model with attention under ONNX Runtime (whose graph cannot split the batch for the
attention maps).
"""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
import weakref
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.contract import NonFiniteDescriptorsError, check_finite_descriptors, model_name
from ..models.fusion import FusedCSA, fuse_for_inference
from ..parallel import ordered_map
from ..precision import cpu_kind

__all__ = ["as_patch_tensor", "describe_patches", "PatchDescriber", "auto_backend", "choose_auto_backend",
           "measure_backends", "model_signature", "default_batch_size",
           "onnxruntime_available", "BACKENDS", "PRECISIONS",
           "ONNX_MIN_PATCHES", "check_device"]

BACKENDS = ("auto", "eager", "fused", "onnxruntime", "compile")
PRECISIONS = ("float32", "bfloat16")
#: "auto" uses ONNX Runtime from this many patches on (building the session costs ~0.3 s, once per model
#: and weights: the session is cached, so the second image of a pair already gets it for free).
ONNX_MIN_PATCHES = 1024
#: a prepared backend must reproduce the eager model to this (max abs difference, unit descriptors).
_PROBE_TOLERANCE = 1e-4
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


#: how patches of another size are brought to the model's input size (a recorded option of a model,
#: ``model.descnet_resize``): ``antialias`` -- bilinear with anti-aliasing (descnet's own weights);
#: ``bilinear`` -- plain bilinear, half-pixel centres, no anti-aliasing: ``cv2.resize(p, (32, 32))`` as in
#: HardNet's training and ``hpatches_extract_HardNet.py`` (the published HardNet/SOSNet/HyNet convention)
RESIZE_METHODS = ("antialias", "bilinear")


def as_patch_tensor(patches: Any, patch_size: int, resize: str = "antialias") -> torch.Tensor:
    """uint8 or float patches ``(N, H, W)`` / ``(N, 1, H, W)`` -> float ``(N, 1, P, P)`` in [0, 1].

    uint8 input is divided by 255; float input is taken as already in [0, 1]. Patches of another size
    are resized by ``resize`` (:data:`RESIZE_METHODS`; e.g. HPatches' 65x65 -> 32x32). The result is on
    the device of the input.
    """
    if resize not in RESIZE_METHODS:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {resize!r}")
    x = torch.from_numpy(np.ascontiguousarray(patches)) if isinstance(patches, np.ndarray) else patches
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"patches must be a numpy array or torch tensor, got {type(patches).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
        raise ValueError(f"patches must be (N, H, W) or (N, 1, H, W) with H == W, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif x.is_floating_point():
        x = x.float()
    else:
        raise TypeError(f"patches must be uint8 or floating point, got {x.dtype}")
    if x.shape[-1] != patch_size:
        x = F.interpolate(x, size=(patch_size, patch_size), mode="bilinear", align_corners=False,
                          antialias=resize == "antialias")
    return x


def check_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that exists here; a clear ``ValueError`` naming ``what`` otherwise
    (``cuda`` on a torch without CUDA support or without a GPU, a GPU index past the last, an unknown name)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{what} {device}: not a torch device ({err}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch has no CUDA support (a CPU-only build)" if torch.version.cuda is None
                   else "no GPU is visible")
            raise ValueError(f"{what} {device}: CUDA is not available: {why}; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{what} {device}: there are {torch.cuda.device_count()} GPU(s) (cuda:0 ...); "
                             f"choose one of them")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{what} {device}: MPS is not available here; use cpu")
    return dev


# ------------------------------------------------------------------------------------------ backends


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def auto_backend(device: str | torch.device = "cpu", precision: str = "float32", patches: int | None = None) -> str:
    """The backend ``"auto"`` stands for: ``"onnxruntime"`` on a CPU with AVX-512 (:func:`descnet.precision.cpu_kind`)
    in float32 when ONNX Runtime is installed and the job has at least :data:`ONNX_MIN_PATCHES` patches (or
    ``patches`` is not given); ``"fused"`` otherwise, including AVX2-only CPUs (module docstring)."""
    if torch.device(device).type != "cpu" or precision != "float32" or not onnxruntime_available():
        return "fused"
    if patches is not None and patches < ONNX_MIN_PATCHES:
        return "fused"
    return "onnxruntime" if cpu_kind().startswith(("AVX512", "AMX")) else "fused"


#: :func:`measure_backends`: patches per timed call and timed rounds (round-robin, the best round counts)
MEASURE_PATCHES = 1024
MEASURE_ROUNDS = 3
#: the backends ``auto`` chooses between by measurement
MEASURED_BACKENDS = ("fused", "onnxruntime")


def model_signature(model: nn.Module) -> str:
    """What a model's speed depends on: its class, architecture (module tree with every layer's shape) and patch
    size; not its weights. A short digest."""
    import hashlib

    text = f"{type(model).__module__}.{type(model).__qualname__}|{getattr(model, 'patch_size', 32)}|{model!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure_backends(model: nn.Module, device: str | torch.device = "cpu", precision: str = "float32",
                     candidates: tuple[str, ...] = MEASURED_BACKENDS, patches: int = MEASURE_PATCHES,
                     rounds: int = MEASURE_ROUNDS) -> dict[str, float]:
    """Seconds each backend of ``candidates`` takes to describe ``patches`` random 8-bit patches with ``model``:
    the best of ``rounds`` round-robin rounds after a warm-up batch. A backend that cannot take the model (its
    describer falls back to another) is left out."""
    describers = {}
    for name in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                describer = PatchDescriber(model, device, name, precision)
        except Exception:  # noqa: BLE001 -- not available here: not a candidate
            continue
        if describer.backend == name:
            describers[name] = describer
    size = describers[next(iter(describers))].patch_size if describers else 32
    data = np.random.default_rng(0).integers(0, 256, (patches, size, size), dtype=np.uint8)
    for describer in describers.values():  # warm-up: first-call allocations, ONNX Runtime's arena
        describe_patches(describer, data[:describer.batch_size * describer.workers])
    best = {name: float("inf") for name in describers}
    for _ in range(rounds):
        for name, describer in describers.items():
            start = time.perf_counter()
            describe_patches(describer, data)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def choose_auto_backend(model: nn.Module, device: str | torch.device = "cpu", precision: str = "float32") -> str:
    """The backend ``"auto"`` means for ``model`` here: the fastest of :data:`MEASURED_BACKENDS` by measurement,
    cached (:mod:`descnet.features.backend_choice`), on the CPU in float32 with ONNX Runtime installed; the rule
    :func:`auto_backend` otherwise."""
    from ..runinfo import cpu_model
    from .backend_choice import backend_key, choose_backend

    rule = auto_backend(device, precision)
    if torch.device(device).type != "cpu" or precision != "float32" or not onnxruntime_available():
        return rule
    import onnxruntime

    key = backend_key(cpu_model(), cpu_kind(), torch.get_num_threads(), model_signature(model),
                      {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}, precision)
    return choose_backend(key, MEASURED_BACKENDS, lambda: measure_backends(model, device, precision), rule)


def default_batch_size(backend: str, device: str | torch.device = "cpu", attention: bool = False) -> int:
    """Patches per forward pass: 4096 on CUDA; on the CPU 32 for PyTorch, and for ONNX Runtime 128 (16 for
    a model with attention) per worker.

    See the module docstring: small CPU batches keep PyTorch's activations and the attention maps of
    CSA / non-local blocks in cache; ONNX Runtime's own memory arena makes large batches safe for CNNs.
    (Measured on a 2-core AVX-512 CPU; ``benchmarks/describe_speed.py --batch-size`` compares others.)
    """
    if torch.device(device).type != "cpu":
        return 4096
    if backend == "onnxruntime":
        return 16 if attention else 128
    return 32


def _has_attention(model: nn.Module) -> bool:
    from descnet.models import CompressedSelfAttention, NonLocalAttention

    return any(isinstance(m, (CompressedSelfAttention, NonLocalAttention, FusedCSA)) for m in model.modules())


def _has_parameters(model: nn.Module) -> bool:
    return any(True for _ in model.parameters())


class _OnnxRuntimeModel:
    """An ONNX Runtime session behind a ``(B, 1, P, P) float32 CPU tensor -> (B, D)`` callable.

    Each call runs on the calling thread only; ``workers`` calls may run at once (the session is thread-safe).
    """

    def __init__(self, model: nn.Module, patch_size: int) -> None:
        import onnxruntime as ort

        from descnet.models.export import onnx_bytes

        self.workers = max(1, torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes(model, patch_size), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def _compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # read at compile time: weights become constants, convs prepacked
    return torch.compile(model, dynamic=True)  # one graph for every batch size


class PatchDescriber:
    """A model prepared for fast description: float ``(B, 1, P, P)`` -> float32 ``(B, D)`` on the CPU.

    Args:
        model: any descnet model (a copy is prepared; ``model`` is not changed).
        device: where the model runs.
        backend: one of :data:`BACKENDS` (``"auto"``: :func:`auto_backend`); see the module docstring.
        precision: ``"float32"`` or ``"bfloat16"``.

    Attributes: ``backend`` (the backend actually used, after any fallback), ``device``, ``precision``,
    ``patch_size``, ``descriptor_dim``, ``workers`` (batches described at once by :meth:`map`).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", backend: str = "auto",
                 precision: str = "float32") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.device = check_device(device)
        self.precision = precision
        self.name = model_name(model)
        self.dtype = _DTYPES[precision]
        self.patch_size = int(getattr(model, "patch_size", 32))
        self.resize = getattr(model, "descnet_resize", "antialias")  # the model's input convention
        self.has_attention = _has_attention(model)
        self.descriptor_dim = int(getattr(model, "descriptor_dim", 0)) or None
        requested = backend
        if backend == "auto":
            backend = choose_auto_backend(model, self.device, precision)
        reference = _eager_copy(model, self.device)
        chain = {"onnxruntime": ["onnxruntime", "fused", "eager"], "compile": ["compile", "fused", "eager"],
                 "fused": ["fused", "eager"], "eager": ["eager"]}[backend]
        errors = []
        for candidate in chain:
            try:
                self._forward = self._build(candidate, model, reference)
                self.backend = candidate
                break
            except Exception as err:  # noqa: BLE001 -- any failure means: use the next backend
                message = str(err).strip()
                errors.append(f"{candidate}: {type(err).__name__}: {message.splitlines()[0] if message else ''}")
        if candidate != backend and requested != "auto":
            warnings.warn(f"describe: backend {backend!r} is not available for this model ({'; '.join(errors)}); "
                          f"using {self.backend!r}", RuntimeWarning, stacklevel=3)

    def _build(self, backend: str, model: nn.Module, reference: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        if backend == "eager":
            return self._wrap(reference.to(self.dtype) if self.dtype != torch.float32 else reference)
        if backend == "onnxruntime":
            if self.device.type != "cpu" or self.dtype != torch.float32:
                raise ValueError("ONNX Runtime runs float32 on the CPU here")
            if not _has_parameters(model) or isinstance(model, torch.jit.ScriptModule):
                raise ValueError("only parametrised eager PyTorch models are exported")
            forward = _OnnxRuntimeModel(fuse_for_inference(model).cpu(), self.patch_size)
        else:
            if isinstance(model, torch.jit.ScriptModule):
                raise ValueError("TorchScript models run as they are")
            fused = fuse_for_inference(model).to(self.device, self.dtype)
            if self.device.type == "cpu":  # conv weights in the layout of the channels-last activations
                fused = fused.to(memory_format=torch.channels_last)
            forward = self._wrap(_compiled(fused) if backend == "compile" else fused)
        self._check(forward, reference)
        return forward

    def _wrap(self, module: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        dtype, cuda = self.dtype, self.device.type == "cuda"

        def forward(x: torch.Tensor) -> torch.Tensor:
            # on CUDA: autotuned cuDNN kernels, and float32 means float32 (no TF32 convolutions);
            # on the CPU: channels-last activations, which oneDNN's convolutions run without reorders
            flags = (torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False)
                     if cuda else contextlib.nullcontext())
            with torch.inference_mode(), flags:
                x = x.to(dtype)
                if not cuda and x.ndim == 4:
                    x = x.to(memory_format=torch.channels_last)
                return module(x).float()
        return forward

    def _check(self, forward: Callable[[torch.Tensor], torch.Tensor], reference: nn.Module) -> None:
        """Compare with the eager model on a small probe batch; raise when they differ."""
        generator = torch.Generator().manual_seed(0)
        probe = torch.rand(3, 1, self.patch_size, self.patch_size, generator=generator).to(self.device)
        with torch.inference_mode():
            expected = reference(probe).float().cpu()
        got = forward(probe).float().cpu()
        tolerance = _PROBE_TOLERANCE if self.dtype == torch.float32 else 0.1
        if got.shape != expected.shape or not bool(((got - expected).abs() <= tolerance).all()):
            diff = (got - expected).abs().max().item() if got.shape == expected.shape else float("nan")
            raise ValueError(f"output differs from the eager model (shape {tuple(got.shape)} vs "
                             f"{tuple(expected.shape)}, max difference {diff:.2g})")

    @property
    def workers(self) -> int:
        """Batches :meth:`map` describes at once: one per core for ONNX Runtime, else 1 (PyTorch's own threads)."""
        return getattr(self._forward, "workers", 1)

    @property
    def batch_size(self) -> int:
        """The default patches per call for this model and backend (:func:`default_batch_size`)."""
        return default_batch_size(self.backend, self.device, self.has_attention)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, P, P)`` float patches in [0, 1] -> float32 ``(B, D)`` CPU descriptors."""
        return self._forward(x.to(self.device)).cpu()

    def map(self, batches: Iterable[Any]) -> Iterator[torch.Tensor]:
        """Describe each batch (anything :func:`as_patch_tensor` takes) -> float32 ``(B, D)`` CPU descriptors,
        in order; :attr:`workers` batches at once.
        """
        def describe(batch: Any) -> torch.Tensor:
            if isinstance(batch, np.ndarray):
                batch = torch.from_numpy(np.ascontiguousarray(batch))
            return self(as_patch_tensor(batch.to(self.device, non_blocking=True), self.patch_size, self.resize))
        return ordered_map(describe, batches, self.workers)

    def __repr__(self) -> str:
        return (f"PatchDescriber(backend={self.backend!r}, device={str(self.device)!r}, "
                f"precision={self.precision!r}, patch_size={self.patch_size})")


def _eager_copy(model: nn.Module, device: torch.device) -> nn.Module:
    try:
        reference = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 -- e.g. a wrapped model that cannot be copied: use it as it is
        reference = model
    return reference.eval().to(device)


# prepared describers per model, rebuilt when the weights change; a cache only (never changes a result)
_DESCRIBERS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _weights_key(model: nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in
                 [*model.parameters(), *model.buffers()])


def _describer_for(model: nn.Module, device: torch.device, backend: str, precision: str) -> PatchDescriber:
    key = (str(device), backend, precision)
    weights = _weights_key(model)
    entries = _DESCRIBERS.setdefault(model, {})
    cached = entries.get(key)
    if cached is not None and cached[0] == weights:
        return cached[1]
    describer = PatchDescriber(model, device, backend, precision)
    entries[key] = (weights, describer)
    return describer


def describe_patches(model: nn.Module | PatchDescriber, patches: Any, batch_size: int | None = None,
                     device: str | torch.device = "cpu", progress: bool = False, *, backend: str = "auto",
                     precision: str = "float32") -> torch.Tensor:
    """Describe patches with ``model``: uint8 or float ``(N, H, W)`` / ``(N, 1, H, W)`` -> float32 ``(N, D)``.

    Patches are scaled to [0, 1] (uint8 / 255) and resized to the model's ``patch_size`` on the device
    (:func:`as_patch_tensor`). ``model`` is not modified; a prepared copy (:class:`PatchDescriber`) is built
    once and reused while the model's weights stay the same. ``model`` may also be a :class:`PatchDescriber`.

    Args:
        batch_size: patches per forward pass; ``None`` picks :func:`default_batch_size`.
        device: where the model runs; descriptors are returned on the CPU.
        progress: show a progress bar.
        backend: see the module docstring; ``"auto"``: :func:`auto_backend`.
        precision: ``"float32"`` or ``"bfloat16"``.

    Raises :class:`NonFiniteDescriptorsError` (naming the model) when any descriptor is NaN or inf.
    """
    n = len(patches)
    device = check_device(device)
    if isinstance(model, PatchDescriber):
        describer = model
    else:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "auto" and n < ONNX_MIN_PATCHES:
            backend = "fused"  # a small job; "auto" stays "auto" otherwise, so a fallback does not warn
        describer = _describer_for(model, device, backend, precision)
    if batch_size is None:
        batch_size = describer.batch_size
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    if n == 0:
        return torch.empty(0, describer.descriptor_dim or 0)
    out: torch.Tensor | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="describe", unit="patch", unit_scale=True, leave=False)
    starts = range(0, n, batch_size)
    batches = describer.map(patches[start:start + batch_size] for start in starts)
    for start, desc in zip(starts, batches):
        if out is None:
            out = torch.empty(n, desc.shape[1], dtype=torch.float32)
        out[start:start + len(desc)] = desc
        if bar is not None:
            bar.update(len(desc))
    if bar is not None:
        bar.close()
    check_finite_descriptors(out, describer.name)
    return out
