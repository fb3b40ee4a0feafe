"""Multi-process training helpers (PyTorch DDP): process group set-up from ``torchrun``'s environment,
a gradient-keeping all-gather for global-batch mining, and rank-0-only side effects.

``torchrun --nproc_per_node=K -m descnet.cli.train CONFIG`` (or ``descnet train CONFIG --nproc K``) starts K
processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; multi-node
works the same with torchrun's ``--nnodes``/``--rdzv-*`` options.

Gradients of the global-batch loss: every rank computes the same loss ``L`` over the gathered descriptors.
The backward of :func:`all_gather_with_grad` sums the gradients of all ranks into each rank's own
descriptors (``K * dL/dx_r``), and DDP averages the parameter gradients over the K ranks, so the update
equals the single-process gradient of ``L`` over the whole batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "dist_info_from_env", "init_distributed", "all_gather_with_grad", "barrier",
           "shutdown", "select_device"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info_from_env() -> DistInfo:
    """Read torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (a single process when they are unset)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as err:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {err}") from None


def select_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"runtime.device is {name!r} but CUDA is not available here (use cpu or auto)")
        if name == "cuda":
            name = f"cuda:{info.local_rank % torch.cuda.device_count()}"
        device = torch.device(name)
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        raise ValueError(f"runtime.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device("cpu")


def init_distributed(info: DistInfo, device: torch.device, backend: str = "auto") -> None:
    """Join the process group (no-op for a single process). ``auto``: NCCL on CUDA, gloo on the CPU."""
    if not info.distributed or dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise ValueError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start the processes with "
                         "torchrun (or descnet train --nproc K)")
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, **kwargs)


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(b, D)`` of all ranks in rank order -> ``(K * b, D)``, differentiable.

    The gradient flowing back to ``x`` is the sum over ranks (see the module docstring).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
