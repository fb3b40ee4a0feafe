"""The training loop: HardNet's recipe, checkpoints and exact resume, AMP, DDP.

>>> trainer = Trainer(load_config("configs/hardnet.yaml"), "runs/hardnet")   # doctest: +SKIP
>>> summary = trainer.fit()                                                   # doctest: +SKIP

One optimiser step: the :class:`~descnet.sampling.PairSampler` gives this process's slice of a global batch
of (anchor, positive) pairs from distinct 3D points; the :class:`~descnet.sampling.BatchAssembler` (in a
background thread, a few batches ahead) turns them into float patches with the "+" augmentation; the model
describes anchors and positives in two forward passes (as HardNet does, so BatchNorm sees each set
alone); the hardest-in-batch triplet loss is computed in float32, over the whole global batch when
``loss.global_mining`` is set under DDP; then one SGD step and one schedule step.

Exactness: every random draw is a function of ``(seed, epoch, step)`` -- the sampler's epoch, the
augmentation codes and torch's generator (dropout), reseeded before each step -- so resuming from any
checkpoint repeats the uninterrupted run bit for bit on the CPU.

A run directory holds ``config.yaml`` (the config as run), ``environment.json`` (machine, versions, code
version, one entry per start or resume), ``metrics.jsonl`` (a ``step`` row every ``runtime.log_every``
steps, an ``epoch`` row with the validation figures after every epoch), ``last.pt`` and ``best.pt`` (the
names are :mod:`descnet.runinfo`'s; ``docs/file-layouts.md``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from descnet.io import atomic_path, write_json
from descnet.losses import hardest_in_batch_triplet
from descnet.models import create_model, model_entry
from descnet.precision import resolve_amp
from descnet.sampling import BatchAssembler, PairSampler

from descnet.runinfo import BEST_CHECKPOINT, LAST_CHECKPOINT, RUN_CONFIG, RUN_ENVIRONMENT, RUN_METRICS

from .checkpoint import (FORMAT_VERSION, find_checkpoint, is_better, load_checkpoint, non_finite_tensors,
                         save_checkpoint)
from .config import RESUMABLE_PREFIXES, changed_keys, check_config, dump_config
from .data import PairSet, PatchPoints, load_pair_set, load_training_data
from .distributed import (DistInfo, all_gather_with_grad, barrier, dist_info_from_env, init_distributed,
                          select_device)

__all__ = ["Trainer", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss or the weights became NaN or infinite: the run stops; the last good ``last.pt`` is kept
    (a checkpoint with non-finite weights is never written)."""


class _PairForward(nn.Module):
    """``(anchors, positives) -> (model(anchors), model(positives))`` in one call, so DDP sees one forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(anchors), self.model(positives)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank, 0x5eed]).generate_state(1, np.uint64)[0] >> 1)


class _Prefetcher:
    """Runs ``make(item)`` for the items of ``source`` in a daemon thread, ``depth`` results ahead.

    Iterating yields the results in order; :attr:`wait` accumulates the seconds the consumer was blocked.
    """

    _END = object()

    def __init__(self, source: Iterable[Any], make: Callable[[Any], Any], depth: int) -> None:
        self.wait = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source), make), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[Any], make: Callable[[Any], Any]) -> None:
        try:
            for item in source:
                if not self._put((True, make(item))):
                    return
        except BaseException as err:  # hand the error to the consumer
            self._put((False, err))
            return
        self._put((True, self._END))

    def __iter__(self) -> Iterator[Any]:
        while True:
            start = time.perf_counter()
            ok, value = self._queue.get()
            self.wait += time.perf_counter() - start
            if not ok:
                raise value
            if value is self._END:
                return
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Trainer:
    """Train a registered model with the hardest-in-batch triplet loss (see the module docstring).

    Args:
        config: a full config (:func:`descnet.training.config.load_config`).
        run_dir: where config, metrics and checkpoints go. A new run refuses a folder that already holds a
            checkpoint (nothing is ever overwritten by accident); resume instead.
        resume: a run directory or checkpoint to continue. The config must equal the checkpoint's except
            for ``runtime.*`` keys.
        data, pair_sets, held_sequences: training points, validation pair sets and (for the HPatches matching
            mAP) held-out sequences already in memory; skips loading ``data`` (for tests and notebooks).
        dist: this process's place in a DDP job (default: from torchrun's environment variables).
        callbacks: ``callback(trainer, event)`` after every ``"step"`` and ``"epoch"``.
    """

    def __init__(self, config: Mapping[str, Any], run_dir: str | os.PathLike, *,
                 resume: str | os.PathLike | None = None, data: PatchPoints | None = None,
                 pair_sets: Sequence[PairSet] | None = None,
                 held_sequences: Mapping[str, Mapping[str, np.ndarray]] | None = None, dist: DistInfo | None = None,
                 callbacks: Sequence[Callable[["Trainer", str], None]] = ()) -> None:
        check_config(config)
        self.run_dir = Path(run_dir)
        self.dist = dist or dist_info_from_env()
        self.callbacks = list(callbacks)
        checkpoint = None
        if resume is not None:
            checkpoint = load_checkpoint(resume)
            changed = [k for k in changed_keys(checkpoint["config"], config)
                       if not k.startswith(RESUMABLE_PREFIXES)]
            if changed:
                raise ValueError(f"{find_checkpoint(resume)}: cannot resume with a different config; changed: "
                                 f"{', '.join(changed)} (only {', '.join(RESUMABLE_PREFIXES)}* may change)")
        elif (self.run_dir / LAST_CHECKPOINT).exists() or (self.run_dir / BEST_CHECKPOINT).exists():
            # (under DDP every rank checks before the DDP constructor, a collective, so before rank 0 saves)
            raise ValueError(f"{self.run_dir}: already holds a run (last.pt/best.pt); resume it with --resume "
                             f"{self.run_dir} or choose another --out")
        self.config = dict(config)
        rt = config["runtime"]
        if rt["threads"]:
            torch.set_num_threads(rt["threads"])
        self.device = select_device(rt["device"], self.dist)
        init_distributed(self.dist, self.device, rt["backend"])
        self.precision = resolve_amp(rt["amp"], self.device)
        self.amp_dtype = self.precision.dtype
        self.progress = bool(rt["progress"]) and self.dist.is_main

        # the model: same initial weights on every rank (seeded), then optional initial weights
        name = config["model"]["name"]
        if not model_entry(name).trainable:
            raise ValueError(f"model.name {name!r} has no trainable parameters (a hand-crafted baseline)")
        torch.manual_seed(config["seed"])
        self.model = create_model(name, **config["model"]["options"])
        if config["model"]["init"] and checkpoint is None:
            self._load_init(config["model"]["init"])
        self.patch_size = int(getattr(self.model, "patch_size", 32))

        # data
        if data is None:
            self._log(f"loading data ({config['data']['source']})")
            data, held_out, held_sequences = load_training_data(
                config["data"], self.patch_size, config["seed"], config["validation"]["num_pairs"],
                matching=config["validation"]["matching"], progress=self.progress)
            extra = [load_pair_set(spec, self.patch_size, config["validation"]["max_pairs"], config["data"]["root"],
                                   self.progress)
                     for spec in config["validation"]["pairs"]] if self.dist.is_main else []
            pair_sets = list(held_out) + extra
        self.data = data
        self.pair_sets = list(pair_sets or [])
        self.held_sequences = dict(held_sequences or {}) if config["validation"]["matching"] else {}
        if config["validation"]["metric"] == "fpr95" and self.held_sequences and not self.pair_sets:
            raise ValueError("validation.metric is fpr95 but there are no validation pairs: use "
                             "validation.metric=matching_map or add validation pairs")
        self.sampler = PairSampler(data.labels, config["pairs_per_epoch"], config["batch_size"], config["seed"],
                                   self.dist.rank, self.dist.world_size)
        aug = config["augmentation"]
        self.assembler = BatchAssembler(data.patches, flip=aug["flip"], rot90=aug["rot90"])

        # model on the device, optimiser, schedule
        self.model.to(self.device)
        if rt["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        if rt["sync_bn"] and self.dist.distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net: nn.Module = _PairForward(self.model)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.net, device_ids=[self.device] if self.device.type == "cuda" else None)
        if rt["compile"]:
            self.net = torch.compile(self.net)
        self.total_steps = config["epochs"] * len(self.sampler)
        self.optimizer = self._make_optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

        self.epoch = 0   # epochs completed
        self.batch = 0   # batches done in the current epoch
        self.step = 0    # optimiser steps done in all
        self.best: dict[str, Any] | None = None
        self.last_metrics: dict[str, Any] = {}
        self.data_wait = 0.0
        self.train_time = 0.0
        self._prefetch: _Prefetcher | None = None
        self.saved_step: int | None = None  # the step of the last.pt on disk (None: none written yet)
        if checkpoint is not None:
            self._restore(checkpoint)
            self.saved_step = self.step
        if self.dist.is_main:
            self._prepare_run_dir(resumed=checkpoint is not None)

    # ------------------------------------------------------------------------------------------ set-up
    def _log(self, message: str) -> None:
        if self.dist.is_main and self.config["runtime"]["progress"]:
            print(f"descnet train: {message}", file=sys.stderr, flush=True)

    def _load_init(self, spec: str) -> None:
        from descnet.models import resolve_model

        source = resolve_model(spec).state_dict()
        own = self.model.state_dict()
        bad = [k for k in set(source) & set(own) if source[k].shape != own[k].shape]
        if bad:
            raise ValueError(f"model.init {spec}: tensor shapes do not fit {self.config['model']['name']}: "
                             f"{', '.join(sorted(bad)[:5])}")
        if not set(source) & set(own):
            raise ValueError(f"model.init {spec}: no parameter name in common with {self.config['model']['name']}")
        result = self.model.load_state_dict(source, strict=False)
        self._log(f"initialised from {spec} ({len(set(source) & set(own))} tensors; new: "
                  f"{len(result.missing_keys)}, ignored: {len(result.unexpected_keys)})")

    def _make_optimizer(self) -> torch.optim.Optimizer:
        opt = self.config["optimizer"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        if opt["name"] == "sgd":
            return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"], dampening=opt["dampening"],
                                   weight_decay=opt["weight_decay"])
        cls = torch.optim.Adam if opt["name"] == "adam" else torch.optim.AdamW
        return cls(params, lr=opt["lr"], betas=tuple(opt["betas"]), weight_decay=opt["weight_decay"])

    def _lr_factor(self, step: int) -> float:
        sched = self.config["schedule"]
        warmup = sched["warmup_steps"]
        factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
        progress = step / max(1, self.total_steps)
        if sched["name"] == "linear":  # HardNet: lr0 * (1 - step / total_steps)
            factor *= max(0.0, 1.0 - progress)
        elif sched["name"] == "cosine":
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return factor

    def _prepare_run_dir(self, resumed: bool) -> None:
        from descnet.runinfo import environment_info

        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob(".*.tmp"):  # temporary files of a killed run (the run dir is this run's)
            stale.unlink(missing_ok=True)
        with atomic_path(self.run_dir / RUN_CONFIG) as tmp:
            tmp.write_text(dump_config(self.config))
        env_path = self.run_dir / RUN_ENVIRONMENT
        sessions = []
        if resumed and env_path.is_file():
            try:
                sessions = json.loads(env_path.read_text()).get("sessions", [])
            except (ValueError, AttributeError):
                sessions = []
        sessions.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_at_step": self.step,
                         "argv": sys.argv, "world_size": self.dist.world_size,
                         "precision": self.precision.as_dict(),
                         "environment": environment_info(str(self.device))})
        write_json(env_path, {"sessions": sessions})
        metrics = self.run_dir / RUN_METRICS
        if resumed and metrics.is_file():  # drop rows the interrupted run wrote after this checkpoint
            rows = [line for line in metrics.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= self.step]
            with atomic_path(metrics) as tmp:
                tmp.write_text("".join(r + "\n" for r in rows))
        elif not resumed:
            metrics.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """The checkpoint payload (see :mod:`descnet.training.checkpoint`)."""
        return {
            "descnet": FORMAT_VERSION,
            "model": {"name": self.config["model"]["name"], "options": dict(self.model.descnet_options)},
            "state_dict": self._bare_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch, "step": self.step, "batch": self.batch,
            "rng": {"seed": self.config["seed"], "scheme": "SeedSequence([seed, epoch]) / ([seed, step, rank])"},
            "config": self.config,
            "metrics": self.last_metrics,
            "best": self.best,
        }

    def _bare_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's tensors on the CPU, contiguous (SyncBatchNorm has BatchNorm2d's keys)."""
        return {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
                for k, v in self.model.state_dict().items()}

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step, self.batch = int(ckpt["epoch"]), int(ckpt["step"]), int(ckpt["batch"])
        self.best = ckpt.get("best")
        self.last_metrics = dict(ckpt.get("metrics") or {})
        if self.step != self.epoch * len(self.sampler) + self.batch:
            raise ValueError(f"checkpoint at step {self.step} does not fit epoch {self.epoch} batch {self.batch} "
                             f"with {len(self.sampler)} batches per epoch")
        self._log(f"resuming at epoch {self.epoch + 1}, batch {self.batch}, step {self.step}")

    def save(self, name: str = LAST_CHECKPOINT) -> Path | None:
        """Write a checkpoint into the run directory (rank 0 only; atomic)."""
        bad = non_finite_tensors(self.model.state_dict())  # on every rank alike (DDP: the same weights)
        if bad:
            raise NonFiniteLossError(
                f"the weights became non-finite ({', '.join(bad[:3])}) by epoch {self.epoch + 1}, step {self.step}; "
                f"they were not saved. {self._kept_note()} (lower optimizer.lr, or try runtime.amp=none)")
        path = save_checkpoint(self.run_dir / name, self.state()) if self.dist.is_main else None
        if name == LAST_CHECKPOINT:
            self.saved_step = self.step  # rank 0 wrote it (other ranks: for their messages)
        return path

    def _kept_note(self) -> str:
        """Which checkpoint a stopped run leaves, and from which step."""
        if self.saved_step is None:
            return f"No checkpoint was written ({self.run_dir / LAST_CHECKPOINT} does not exist)."
        return f"The last good checkpoint is kept: {self.run_dir / LAST_CHECKPOINT} (step {self.saved_step})."

    def _write_metrics(self, row: Mapping[str, Any]) -> None:
        if self.dist.is_main:
            with open(self.run_dir / RUN_METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")

    # -------------------------------------------------------------------------------------- training
    def _to_device(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        fmt = torch.channels_last if self.config["runtime"]["channels_last"] else torch.contiguous_format
        return tuple(x.to(self.device, non_blocking=True).contiguous(memory_format=fmt) for x in batch)

    def _make_batch(self, item: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        anchors, positives = self.assembler(*item)
        if self.device.type == "cuda":
            anchors, positives = anchors.pin_memory(), positives.pin_memory()
        return anchors, positives

    def train_step(self, anchors: torch.Tensor, positives: torch.Tensor) -> dict[str, float]:
        """One optimiser step on this process's ``(b, 1, P, P)`` anchors and positives."""
        torch.manual_seed(_step_seed(self.config["seed"], self.step, self.dist.rank))
        loss_cfg = self.config["loss"]
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            da, dp = self.net(anchors, positives)
        da, dp = da.float(), dp.float()
        if self.dist.distributed and loss_cfg["global_mining"]:
            da, dp = all_gather_with_grad(da), all_gather_with_grad(dp)
        loss, pos, neg = hardest_in_batch_triplet(da, dp, margin=loss_cfg["margin"],
                                                  anchor_swap=loss_cfg["anchor_swap"], return_distances=True)
        stats = torch.stack([loss.detach(), pos.mean(), neg[torch.isfinite(neg)].mean()])
        if self.dist.distributed and not loss_cfg["global_mining"]:
            import torch.distributed as dist

            dist.all_reduce(stats)
            stats /= self.dist.world_size
        values = stats.tolist()  # one sync per step; also the non-finite check on every rank alike
        if not math.isfinite(values[0]):
            raise NonFiniteLossError(
                f"the loss became {values[0]} at epoch {self.epoch + 1}, step {self.step + 1} "
                f"(lr {self.scheduler.get_last_lr()[0]:.4g}); the run stopped before this update. {self._kept_note()} "
                f"(lower optimizer.lr, or try runtime.amp=none)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return {"loss": values[0], "pos": values[1], "neg": values[2], "lr": lr}

    def data_wait_now(self) -> float:
        """Seconds the training loop has waited for batches so far (including the current epoch)."""
        return self.data_wait + (self._prefetch.wait if self._prefetch is not None else 0.0)

    def evaluate(self) -> dict[str, float]:
        """Validation figures (rank 0; others get ``{}``): FPR95 on every pair set and their mean ``fpr95``;
        with ``validation.matching``, the HPatches matching mAP of the held-out sequences (``matching_map``)."""
        if not self.dist.is_main or not (self.pair_sets or self.held_sequences):
            return {}
        from descnet.eval.brown import evaluate_brown

        batch = self.config["runtime"]["validation_batch_size"]
        out = {f"fpr95/{s.name}": evaluate_brown(self.model, s.patches, {s.name: s.pairs}, batch_size=batch,
                                                 device=self.device, label=s.name)["pairs"][s.name]["fpr95"]
               for s in self.pair_sets}
        if out:
            out["fpr95"] = float(np.mean(list(out.values())))
        if self.held_sequences:
            from descnet.eval.hpatches import describe_hpatches, matching_map

            descs = describe_hpatches(self.model, self.held_sequences, batch_size=batch, device=self.device)
            out["matching_map"] = float(matching_map(descs))
        self.model.train()
        return out

    def fit(self) -> dict[str, Any]:
        """Train until ``epochs`` are done; returns a summary (best figure, last metrics, run dir)."""
        cfg = self.config
        epochs, steps_per_epoch = cfg["epochs"], len(self.sampler)
        log_every, ckpt_every = cfg["runtime"]["log_every"], cfg["runtime"]["checkpoint_every"]
        global_batch = cfg["batch_size"]
        self._log(f"{self.sampler.num_patches:,} patches of {self.sampler.num_points:,} points; "
                  f"{steps_per_epoch:,} steps of {global_batch} pairs per epoch; device {self.device}"
                  + (f", {self.dist.world_size} processes" if self.dist.distributed else ""))
        self._log(f"precision: {'float32' if self.precision.amp == 'none' else self.precision.amp} "
                  f"({self.precision.reason})")
        self.model.train()
        if self.step == 0 and self.dist.is_main:
            self.save(LAST_CHECKPOINT)  # the initial state: a run killed in its first steps can resume too
        while self.epoch < epochs:
            self._train_epoch(steps_per_epoch, log_every, ckpt_every, global_batch)
            self.epoch += 1
            self.batch = 0
            row: dict[str, Any] = {"kind": "epoch", "epoch": self.epoch, "step": self.step}
            if self.epoch % cfg["validation"]["every"] == 0 or self.epoch == epochs:
                metrics = self.evaluate()
                barrier()
                if metrics:
                    self.last_metrics = {"epoch": self.epoch, **metrics}
                    row.update(metrics)
                    metric = cfg["validation"]["metric"]
                    if is_better(metrics[metric], self.best, higher_is_better=metric == "matching_map"):
                        self.best = {"metric": metric, "value": metrics[metric], "epoch": self.epoch}
                        self.save(BEST_CHECKPOINT)
                    self._log(f"epoch {self.epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            row["time_s"] = round(self.train_time, 3)
            self._write_metrics(row)
            self.save(LAST_CHECKPOINT)
            for callback in self.callbacks:
                callback(self, "epoch")
        barrier()
        return {"run_dir": str(self.run_dir), "epochs": self.epoch, "steps": self.step, "best": self.best,
                "metrics": self.last_metrics, "data_wait_share": self.data_wait / max(self.train_time, 1e-9)}

    def _train_epoch(self, steps_per_epoch: int, log_every: int, ckpt_every: int, global_batch: int) -> None:
        cfg = self.config
        prefetch = self._prefetch = _Prefetcher(self.sampler.batches(self.epoch, self.batch), self._make_batch,
                                                cfg["runtime"]["prefetch"])
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps_per_epoch, initial=self.batch, desc=f"epoch {self.epoch + 1}/{cfg['epochs']}",
                       unit="step", dynamic_ncols=True, mininterval=0.5)
        window: list[dict[str, float]] = []
        window_start, window_wait = time.perf_counter(), prefetch.wait
        last = time.perf_counter()
        try:
            for batch in prefetch:
                stats = self.train_step(*self._to_device(batch))
                self.step += 1
                self.batch += 1
                now = time.perf_counter()
                self.train_time += now - last
                last = now
                window.append(stats)
                if bar is not None:
                    rate = len(window) * global_batch / max(now - window_start, 1e-9)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.3g}", pairs_s=f"{rate:,.0f}",
                                    refresh=False)
                    bar.update(1)
                if self.step % log_every == 0 or self.batch == steps_per_epoch:
                    elapsed = max(now - window_start, 1e-9)
                    self._write_metrics({
                        "kind": "step", "epoch": self.epoch + 1, "step": self.step,
                        "loss": float(np.mean([s["loss"] for s in window])),
                        "pos": float(np.mean([s["pos"] for s in window])),
                        "neg": float(np.mean([s["neg"] for s in window])),
                        "lr": stats["lr"], "pairs_per_s": len(window) * global_batch / elapsed,
                        "data_wait": (prefetch.wait - window_wait) / elapsed})
                    window, window_start, window_wait = [], now, prefetch.wait
                if ckpt_every and self.step % ckpt_every == 0 and self.batch < steps_per_epoch:
                    self.save(LAST_CHECKPOINT)
                for callback in self.callbacks:
                    callback(self, "step")
                last = time.perf_counter()
        finally:
            self.data_wait += prefetch.wait
            self._prefetch = None
            prefetch.close()
            if bar is not None:
                bar.close()
