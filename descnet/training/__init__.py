"""Training descriptors: configs, the :class:`Trainer`, checkpoints, data sources, DDP helpers.

>>> from descnet.training import Trainer, load_config
>>> Trainer(load_config("configs/hardnet+.yaml", ["data.root=data/brown"]), "runs/hardnet+").fit()  # doctest: +SKIP
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import DEFAULTS, apply_overrides, check_config, load_config
from .data import PairSet, PatchPoints, load_pair_set, load_training_data
from .distributed import DistInfo
from .trainer import NonFiniteLossError, Trainer

__all__ = ["Trainer", "NonFiniteLossError", "load_config", "apply_overrides", "check_config",
           "DEFAULTS", "load_checkpoint", "save_checkpoint", "PatchPoints", "PairSet",
           "load_training_data", "load_pair_set", "DistInfo"]
