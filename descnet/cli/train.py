"""Train a descriptor from a YAML config (HardNet recipe by default), on one machine or several GPUs.

    descnet train configs/hardnet+.yaml --set data.root=data/brown --out runs/hardnet+-liberty
    descnet train --resume runs/hardnet+-liberty        # continue exactly where a run stopped
    descnet train configs/hardnet+.yaml --nproc 4       # DDP over 4 processes (torchrun)

--set takes dotted config keys with YAML values (optimizer.lr=1, runtime.device=cpu, runtime.amp=bf16).
The run directory holds config.yaml, environment.json, metrics.jsonl, last.pt and best.pt; any command
that takes a model SPEC accepts the run directory. Configs: see configs/ and descnet/training/config.py.
"""
from __future__ import annotations

from descnet.train import add_arguments, run

__all__ = ["add_arguments", "run"]
