"""Which floating-point precision to compute in, chosen from what the hardware does natively.

bfloat16 autocast pays off on a CPU only where oneDNN has native bf16 instructions (AVX-512 BF16 or AMX):
there it is ~1.5-1.7x faster than float32 for descnet's networks. On an AVX2-only CPU (or AVX-512 without
BF16) the same autocast is emulated and 15-20x *slower* than float32, so ``auto`` picks float32 there.

* :func:`cpu_kind` -- ``"AMX"``, ``"AVX512_BF16"``, ``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``: the best
  instruction set torch *and* oneDNN may use here (it honours ``ATEN_CPU_CAPABILITY`` and
  ``ONEDNN_MAX_CPU_ISA``, so an AVX-512 machine limited to AVX2 reports ``"AVX2"``). Every speed figure
  descnet records carries it.
* :func:`resolve_amp` -- ``runtime.amp`` (``auto | none | bf16 | fp16``) and a device -> the autocast dtype
  and the reason, e.g. ``(None, "float32: this CPU (AVX2) has no native bf16")``.

Only torch is asked (never ``/proc/cpuinfo``): the hardware flags through ``torch.cpu``, the limits through
``torch.backends.cpu.get_cpu_capability()`` and oneDNN's own bf16 check.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

__all__ = ["AMP_CHOICES", "Precision", "cpu_kind", "cpu_has_native_bf16", "resolve_amp"]

AMP_CHOICES = ("auto", "none", "bf16", "fp16")
_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: how much slower bf16 autocast ran than float32 on an AVX2-only CPU (forward+backward, 2 threads)
EMULATED_BF16_SLOWDOWN = "15-20x"


def _flag(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # noqa: BLE001 - a missing probe means "no"
        return False


def _onednn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001
        return False


def cpu_kind() -> str:
    """The CPU's usable instruction-set level: ``AMX``, ``AVX512_BF16``, ``AVX512``, ``AVX2`` or ``DEFAULT``.

    ``AVX512_BF16``/``AMX`` only when ATen runs its AVX-512 kernels and oneDNN may use bf16 instructions,
    so the ``ATEN_CPU_CAPABILITY``/``ONEDNN_MAX_CPU_ISA`` limits are reflected.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512") and _onednn_bf16():
        if _flag("_is_amx_tile_supported"):
            return "AMX"
        if _flag("_is_avx512_bf16_supported"):
            return "AVX512_BF16"
    return capability


def cpu_has_native_bf16() -> bool:
    """True when bf16 matrix products run natively here (AVX-512 BF16 or AMX, not limited away)."""
    return cpu_kind() in ("AVX512_BF16", "AMX")


@dataclass(frozen=True)
class Precision:
    """The precision chosen for a run: ``amp`` is ``none``, ``bf16`` or ``fp16``; ``reason`` says why."""

    amp: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (``None``: float32, no autocast)."""
        return _DTYPES[self.amp]

    def as_dict(self) -> dict[str, str]:
        return {"amp": self.amp, "reason": self.reason}


def resolve_amp(requested: str, device: torch.device | str, warn: bool = True) -> Precision:
    """``runtime.amp`` on ``device`` -> the :class:`Precision` to train with.

    ``auto``: on CUDA bf16 where the GPU supports it (Ampere and later), else fp16; on the CPU bf16 where
    :func:`cpu_has_native_bf16`, else float32. An explicit ``bf16`` on a CPU without native bf16 is honoured
    but warns once (it is emulated and far slower); ``fp16`` needs CUDA.
    """
    if requested not in AMP_CHOICES:
        raise ValueError(f"runtime.amp must be one of {', '.join(AMP_CHOICES)}, got {requested!r}")
    device = torch.device(device)
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if requested == "auto":
            name = torch.cuda.get_device_name(device)
            return (Precision("bf16", f"auto: {name} supports bf16") if bf16
                    else Precision("fp16", f"auto: {name} has no bf16, fp16 with loss scaling"))
        return Precision(requested, f"runtime.amp={requested}")
    kind = cpu_kind()
    if requested == "fp16":
        raise ValueError("runtime.amp=fp16 needs CUDA; on the CPU use auto, bf16 or none")
    if requested == "auto":
        if cpu_has_native_bf16():
            return Precision("bf16", f"auto: this CPU ({kind}) computes bf16 natively")
        return Precision("none", f"auto: float32, this CPU ({kind}) has no native bf16 "
                                 f"(bf16 would be emulated, {EMULATED_BF16_SLOWDOWN} slower)")
    if requested == "bf16" and not cpu_has_native_bf16():
        message = (f"runtime.amp=bf16 on a CPU without native bf16 ({kind}): it runs, but emulated, about "
                   f"{EMULATED_BF16_SLOWDOWN} slower than float32; runtime.amp=auto chooses float32 here")
        if warn:  # Python shows a warning once per call site by default
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        return Precision("bf16", f"runtime.amp=bf16 (emulated on {kind})")
    return Precision(requested, f"runtime.amp={requested}")
