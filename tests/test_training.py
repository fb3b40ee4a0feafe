"""Training: configs, the Trainer (learning, determinism, schedule, checkpoints, non-finite loss), the CLI.

Fixtures are tiny patch sets written in the published ``hpatches-release`` format (PNG stacks of 65x65
patches, row i = the same point in every image type) with :func:`write_patchset`.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from descnet.precision import cpu_kind

from descnet.training import NonFiniteLossError, PairSet, PatchPoints, Trainer, load_checkpoint, load_config
from descnet.training.checkpoint import save_checkpoint
from descnet.training.config import DEFAULTS, apply_overrides

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- fixtures
def point_patches(num_points: int, types: int, seed: int, size: int = 65) -> np.ndarray:
    """uint8 ``(types, num_points, size, size)``: a smooth random texture per point, seen ``types`` times
    with a small random shift and pixel noise (so pairs are similar but not identical)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (num_points, 12, 12)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(coarse)[:, None], size=size + 8, mode="bicubic",
                                          align_corners=False)[:, 0].numpy()
    out = np.empty((types, num_points, size, size), np.uint8)
    for t in range(types):
        dy, dx = rng.integers(0, 9, 2)
        view = big[:, dy:dy + size, dx:dx + size] + rng.normal(0, 12, (num_points, size, size))
        out[t] = np.clip(view, 0, 255).astype(np.uint8)
    return out


def write_patchset(root: Path, sequences: int = 3, rows: int = 24, seed: int = 0) -> Path:
    """A tiny ``hpatches-release`` folder: ``root/v_seqK/<type>.png`` stacks of all 16 types."""
    from descnet.data.hpatches import TYPES as types
    from descnet.data.hpatches import write_patch_stack

    for k in range(sequences):
        stacks = point_patches(rows, len(types), seed * 100 + k)
        for t, name in enumerate(types):
            write_patch_stack(root / f"v_seq{k}" / f"{name}.png", stacks[t])
    return root


def tiny_overrides(root: Path, **extra) -> list[str]:
    """A run of a few CPU steps on the tiny patch set (one held-out sequence gives the validation pairs)."""
    items = {"data.source": "patchset", "data.root": str(root), "data.holdout": 1, "data.types": ["ref", "e1", "h1"],
             "batch_size": 16,
             "pairs_per_epoch": 64, "epochs": 2, "optimizer.lr": 1.0, "validation.num_pairs": 200,
             "runtime.progress": False, "runtime.threads": 1, "runtime.log_every": 1,
             "runtime.checkpoint_every": 3, "runtime.validation_batch_size": 256,
             "runtime.amp": "none"}  # float32: exact comparisons must not depend on the CPU kind
    items.update(extra)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in items.items()]


@pytest.fixture(scope="module")
def patchset(tmp_path_factory) -> Path:
    return write_patchset(tmp_path_factory.mktemp("patchset") / "hpatches-release")


def in_memory_data(num_points: int = 48, seed: int = 0) -> PatchPoints:
    stacks = point_patches(num_points, 3, seed, size=32)
    return PatchPoints(stacks.reshape(-1, 32, 32), np.tile(np.arange(num_points), 3).astype(np.int64))


# --------------------------------------------------------------------------------------------- config
def test_defaults_are_the_hardnet_recipe():
    d = DEFAULTS
    assert (d["optimizer"]["name"], d["optimizer"]["lr"], d["optimizer"]["momentum"], d["optimizer"]["dampening"],
            d["optimizer"]["weight_decay"]) == ("sgd", 10.0, 0.9, 0.9, 1e-4)
    assert (d["batch_size"], d["pairs_per_epoch"], d["epochs"]) == (1024, 5_000_000, 10)
    assert (d["loss"]["margin"], d["loss"]["anchor_swap"], d["schedule"]["name"]) == (1.0, True, "linear")


def test_config_files_merge_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {name: hardnet-csa, options: {num_bases: 16}}\nbatch_size: 512\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmodel: {options: {groups: 4}}\naugmentation: {flip: true}\n")
    cfg = load_config(tmp_path / "child.yaml", ["optimizer.lr=0.5", "model.options.placement=[32, 16]"])
    assert cfg["model"] == {"name": "hardnet-csa", "options": {"num_bases": 16, "groups": 4, "placement": [32, 16]},
                            "init": None}
    assert cfg["batch_size"] == 512 and cfg["optimizer"]["lr"] == 0.5 and cfg["augmentation"]["flip"] is True
    assert cfg["optimizer"]["momentum"] == 0.9  # untouched defaults stay


def test_config_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimiser: {lr: 1}\n")
    with pytest.raises(KeyError, match=r"bad.yaml: unknown config key 'optimiser'"):
        load_config(bad)
    bad.write_text("optimizer: {lrate: 1}\n")
    with pytest.raises(KeyError, match=r"unknown config key 'optimizer.lrate'"):
        load_config(bad)
    bad.write_text("batch_size: -3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: batch_size must be an integer >= 2"):
        load_config(bad)
    bad.write_text("optimizer: {name: rmsprop}\n")
    with pytest.raises(ValueError, match=r"optimizer.name must be one of sgd, adam, adamw"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match="a config is a mapping"):
        load_config(bad)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        apply_overrides(DEFAULTS, ["optimizer.lr"])
    with pytest.raises(KeyError, match="--set optimizer.lrr=1: unknown config key 'optimizer.lrr'"):
        apply_overrides(DEFAULTS, ["optimizer.lrr=1"])


def test_shipped_configs_load():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    names = {p.stem for p in configs}
    assert {"hardnet", "hardnet+", "hardnet-csa", "hardnet-csa+", "hardnet-sa+", "shared-sequences"} <= names
    assert {f"ablation-csa-bases{m}" for m in (8, 16, 32, 64)} <= names
    assert {f"ablation-csa-groups{g}" for g in (1, 2, 4)} <= names
    assert {f"ablation-csa-at{p}" for p in ("32", "16", "both")} <= names
    from descnet.models import create_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # orthogonal init is 10x slower with 2 threads on a busy 2-core machine
    try:
        for path in configs:
            cfg = load_config(path)
            create_model(cfg["model"]["name"], **cfg["model"]["options"])  # the options fit the model
    finally:
        torch.set_num_threads(threads)
    plus = load_config(REPO / "configs" / "hardnet+.yaml")
    assert plus["augmentation"] == {"flip": True, "rot90": True}
    assert load_config(REPO / "configs" / "ablation-csa-bases8.yaml")["model"]["options"]["num_bases"] == 8


# -------------------------------------------------------------------------------------------- trainer
def _config(**extra):
    """A tiny run: TFeat (the cheapest registered model) unless ``model.name`` says otherwise."""
    items = {"model.name": "tfeat", "batch_size": 16, "pairs_per_epoch": 64, "epochs": 2, "optimizer.lr": 1.0,
             "runtime.progress": False, "runtime.threads": 1, "runtime.log_every": 1, "runtime.checkpoint_every": 0}
    items.update(extra)
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in items.items()])


def _val_set(seed: int = 7) -> PairSet:
    from descnet.sampling import make_validation_pairs

    held = in_memory_data(40, seed)
    return PairSet("held", held.patches, make_validation_pairs(held.labels, 400, 0))


def test_validation_fpr95_is_evaluate_brown(tmp_path):
    # the Trainer's validation figure is the Brown benchmark's (descnet eval brown) on the same pairs
    from descnet.eval.brown import evaluate_brown

    val = _val_set()
    trainer = Trainer(_config(), tmp_path / "run", data=in_memory_data(), pair_sets=[val])
    figure = trainer.evaluate()["fpr95/held"]
    expected = evaluate_brown(trainer.model, val.patches, {"held": val.pairs})["pairs"]["held"]["fpr95"]
    assert 0.0 < figure < 1.0 and figure == expected


def test_fixed_seed_gives_identical_runs_and_linear_lr_decay(tmp_path):
    # HardNet itself: BatchNorm statistics and dropout draws must repeat too
    config = _config(**{"model.name": "hardnet", "pairs_per_epoch": 32})
    data = in_memory_data()
    lrs = []
    first = Trainer(config, tmp_path / "a", data=data,
                    callbacks=[lambda t, e: lrs.append(t.optimizer.param_groups[0]["lr"]) if e == "step" else None])
    first.fit()
    second = Trainer(config, tmp_path / "b", data=data)
    second.fit()
    for (k, v), w in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(v, w), k
    # HardNet: lr_t = lr0 * (1 - t / total) for step t = 0..total-1 (lrs[i] is the lr after step i)
    total = 2 * 32 // 16
    assert np.allclose(lrs, [1.0 * (1 - (t + 1) / total) for t in range(total)])
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows if r["kind"] == "step"] == pytest.approx([1 - t / total for t in range(total)])
    other = Trainer(_config(**{"model.name": "hardnet", "seed": 1}), tmp_path / "c", data=data)
    assert not torch.equal(other.model.features[0].weight.cpu(), Trainer(
        _config(**{"model.name": "hardnet"}), tmp_path / "d", data=data).model.features[0].weight)


def test_training_lowers_loss_and_held_out_fpr95(tmp_path):
    data, val = in_memory_data(96), _val_set()
    trainer = Trainer(_config(pairs_per_epoch=320, epochs=3, batch_size=32), tmp_path / "run", data=data,
                      pair_sets=[val])
    before = trainer.evaluate()["fpr95"]
    summary = trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "step"]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    after = summary["best"]["value"]
    assert after < before and after <= 0.5 * before + 1e-9, (before, after)
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and all("fpr95/held" in r for r in epochs)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best"]["value"] == after and best["epoch"] == summary["best"]["epoch"]


def test_checkpoint_is_a_model_spec_and_weights_only(tmp_path):
    from descnet.features.inference import describe_patches
    from descnet.models import resolve_model

    data = in_memory_data()
    trainer = Trainer(_config(**{"model.name": "hardnet-csa", "model.options": {"num_bases": 8}, "epochs": 1,
                                 "pairs_per_epoch": 32}), tmp_path / "run", data=data, pair_sets=[_val_set()])
    trainer.fit()
    raw = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert raw["descnet"] == 1 and raw["model"]["name"] == "hardnet-csa" and raw["model"]["options"]["num_bases"] == 8
    assert raw["step"] == 2 and raw["epoch"] == 1 and raw["batch"] == 0
    patches = data.patches[:20]
    expected = describe_patches(trainer.model, patches)
    for spec in (tmp_path / "run", tmp_path / "run" / "last.pt"):
        model = resolve_model(spec)
        assert torch.equal(describe_patches(model, patches), expected)
    assert (tmp_path / "run" / "best.pt").is_file()
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved == trainer.config
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["sessions"][0]["environment"]["versions"]["torch"] == torch.__version__
    from descnet.precision import resolve_amp

    assert env["sessions"][0]["precision"] == resolve_amp(trainer.config["runtime"]["amp"], "cpu").as_dict()
    assert env["sessions"][0]["environment"]["cpu_kind"] == cpu_kind()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(trainer, event):
        if event == "step" and trainer.step == 5:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    trainer = Trainer(_config(**{"runtime.checkpoint_every": 2}), tmp_path / "run", data=in_memory_data(),
                      callbacks=[poison])
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at epoch 2, step 6.*last\.pt \(step 4\)"):
        trainer.fit()
    kept = load_checkpoint(tmp_path / "run")
    assert kept["step"] == 4  # epoch end 1 (step 4); step 5 was not a checkpoint step, step 6 never happened
    assert all(torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point())


def test_non_finite_weights_are_never_saved_as_a_checkpoint(tmp_path):
    # a NaN running mean does not change the training loss (batch statistics) but poisons the weights
    def poison(trainer, event):
        if event == "step" and trainer.step == 1:
            with torch.no_grad():
                trainer.model.state_dict()["features.1.running_mean"].fill_(float("nan"))

    trainer = Trainer(_config(**{"model.name": "hardnet", "runtime.checkpoint_every": 2}), tmp_path / "run",
                      data=in_memory_data(), callbacks=[poison])
    with pytest.raises(NonFiniteLossError, match=r"weights became non-finite \(features\.1\.running_mean\) by "
                                                 r"epoch 1, step 2.*kept: .*last\.pt \(step 0\)"):
        trainer.fit()
    kept = load_checkpoint(tmp_path / "run")
    assert kept["step"] == 0
    assert all(torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point())
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    from descnet.training.checkpoint import NonFiniteWeightsError

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"descnet": 1, "state_dict": {"w": torch.ones(3)}})
    before = path.read_bytes()
    with pytest.raises(NonFiniteWeightsError, match=r"last\.pt: not written: non-finite weights in w"):
        save_checkpoint(path, {"descnet": 1, "state_dict": {"w": torch.tensor([1.0, float("inf")])}})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_runs_are_never_overwritten_and_resume_refuses_another_config(tmp_path):
    data = in_memory_data()
    Trainer(_config(epochs=1), tmp_path / "run", data=data).fit()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(_config(epochs=1), tmp_path / "run", data=data)
    with pytest.raises(ValueError, match=r"cannot resume with a different config; changed: optimizer.lr"):
        Trainer(_config(epochs=1, **{"optimizer.lr": 2.0}), tmp_path / "run", data=data, resume=tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    # runtime.* may change; a finished run resumes to a no-op
    resumed = Trainer(_config(epochs=1, **{"runtime.log_every": 3}), tmp_path / "run", data=data,
                      resume=tmp_path / "run")
    assert resumed.fit()["steps"] == 4


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"descnet": 1, "x": torch.ones(3)})
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"descnet": 1, "x": torch.zeros(3)})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_bf16_autocast_and_channels_last_on_the_cpu(tmp_path):
    trainer = Trainer(_config(epochs=1, pairs_per_epoch=32, **{"runtime.amp": "bf16", "runtime.channels_last": True}),
                      tmp_path / "run", data=in_memory_data())
    summary = trainer.fit()
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if r["kind"] == "step")
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        Trainer(_config(**{"runtime.amp": "fp16"}), tmp_path / "other", data=in_memory_data())


def test_hpatches_layout_points_and_held_out_sequences(patchset):
    from descnet.training import load_training_data

    cfg = load_config(None, tiny_overrides(patchset))
    points, pair_sets, sequences = load_training_data(cfg["data"], 32, seed=0, num_pairs=100)
    assert sequences == {}
    assert points.patches.shape == (2 * 3 * 24, 32, 32) and points.patches.dtype == np.uint8
    assert np.array_equal(np.bincount(points.labels), np.full(48, 3))  # 2 sequences x 24 points, 3 types each
    (held,) = pair_sets
    assert held.pairs.shape == (100, 3) and held.pairs[:, 2].sum() == 50
    # the held-out sequence is not in the training patches
    from descnet.data.hpatches import read_patch_stack
    from descnet.features.inference import as_patch_tensor

    names = sorted(p.name for p in patchset.iterdir())
    train_refs = {tuple(np.round(as_patch_tensor(read_patch_stack(patchset / n / "ref.png"), 32)[0, 0].numpy()
                                 * 255).astype(np.uint8).ravel()[:50]) for n in names}
    found = {tuple(p.ravel()[:50]) for p in points.patches}
    assert len(train_refs & found) == 2
    cfg = load_config(None, tiny_overrides(patchset, **{"data.holdout": ["v_nope"]}))
    with pytest.raises(ValueError, match="data.holdout names unknown sequences: v_nope"):
        load_training_data(cfg["data"], 32)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_trains_a_patchset_and_reports_errors(tmp_path, patchset, capsys):
    from descnet.cli.main import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "tfeat"}}))
    sets = [x for item in tiny_overrides(patchset, epochs=1) for x in ("--set", item)]
    assert main(["train", str(config), *sets, "--out", str(tmp_path / "run")]) == 0
    assert "done: 4 steps" in capsys.readouterr().out
    assert {"config.yaml", "environment.json", "metrics.jsonl", "last.pt", "best.pt"} <= {
        p.name for p in (tmp_path / "run").iterdir()}

    def fails(*args: str) -> str:
        assert main(["train", *args]) == 2
        return capsys.readouterr().err

    assert "already holds a run" in fails(str(config), *sets, "--out", str(tmp_path / "run"))
    assert "nope.yaml: no such config file" in fails(str(tmp_path / "nope.yaml"))
    assert "unknown config key 'optimizer.lrate'" in fails(str(config), "--set", "optimizer.lrate=1")
    assert "give a CONFIG file" in fails()
    assert "data.root is not set" in fails(str(config), "--set", "data.source=patchset", "--out", str(tmp_path / "r2"))
    assert "cannot resume with a different config; changed: optimizer.lr" in fails(
        str(config), *sets, "--set", "optimizer.lr=3", "--resume", str(tmp_path / "run"))
    assert not (tmp_path / "r2").exists()


def test_python_m_descnet_train_entry_point(tmp_path):
    done = subprocess.run([sys.executable, "-m", "descnet.cli.train", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "torchrun --nproc_per_node" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "descnet.cli.train", str(tmp_path / "missing.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "missing.yaml: no such config file" in bad.stderr


def test_held_out_matching_map_validation(tmp_path, patchset):
    from descnet.data.hpatches import HPatches
    from descnet.eval.hpatches import describe_hpatches, matching_map

    cfg = load_config(None, tiny_overrides(patchset, **{"model.name": "tfeat", "epochs": 1, "validation.matching": True,
                                                        "validation.metric": "matching_map"}))
    trainer = Trainer(cfg, tmp_path / "run")
    (held,) = trainer.held_sequences
    summary = trainer.fit()
    assert summary["best"]["metric"] == "matching_map"
    # the same figure from the 65x65 stacks on disk (resized at description time, not at load time)
    reference = matching_map(describe_hpatches(trainer.model, HPatches(patchset), sequences=[held]))
    assert abs(summary["metrics"]["matching_map"] - reference) < 0.03
    assert 0.0 <= reference <= 1.0 and summary["metrics"]["fpr95"] >= 0.0


def test_model_init_starts_from_a_trained_run(tmp_path):
    data = in_memory_data()
    Trainer(_config(epochs=1, **{"model.name": "hardnet", "pairs_per_epoch": 16}), tmp_path / "a", data=data).fit()
    trained = load_checkpoint(tmp_path / "a")["state_dict"]
    # a HardNet run initialises the body of HardNet-CSA; the attention block stays new (its gamma is 0)
    child = Trainer(_config(**{"model.name": "hardnet-csa", "model.init": str(tmp_path / "a")}), tmp_path / "b",
                    data=data)
    own = child.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in trained.items())
    assert float(own["attn32.gamma"]) == 0.0
    torch.save(own, tmp_path / "csa32.pt")
    with pytest.raises(ValueError, match=r"tensor shapes do not fit hardnet-csa: attn32.bases"):
        Trainer(_config(**{"model.name": "hardnet-csa", "model.options": {"num_bases": 8},
                           "model.init": f"hardnet-csa:{tmp_path / 'csa32.pt'}"}), tmp_path / "c", data=data)
    with pytest.raises(ValueError, match="no parameter name in common"):
        Trainer(_config(**{"model.init": str(tmp_path / "a")}), tmp_path / "d", data=data)


def test_set_numbers_follow_yaml_1_2_and_errors_blame_the_set_item(tmp_path):
    from descnet.training.config import parse_override

    assert parse_override("optimizer.lr=1e-3") == ("optimizer.lr", 1e-3)
    assert parse_override("optimizer.lr=1.5E3") == ("optimizer.lr", 1500.0)
    assert parse_override("loss.margin=.5e-1") == ("loss.margin", 0.05)
    assert parse_override("data.root=1e3x") == ("data.root", "1e3x") and parse_override("seed=7") == ("seed", 7)
    assert load_config(None, ["optimizer.lr=1e-3"])["optimizer"]["lr"] == 1e-3
    good = tmp_path / "good.yaml"
    good.write_text("optimizer: {lr: 2e-2}\n")
    assert load_config(good)["optimizer"]["lr"] == 0.02
    with pytest.raises(ValueError, match=r"^--set optimizer\.lr=abc: optimizer\.lr must be a number"):
        load_config(good, ["seed=3", "optimizer.lr=abc"])
    with pytest.raises(ValueError, match=r"^--set batch_size=-3: batch_size must be an integer >= 2"):
        load_config(good, ["batch_size=-3"])
    with pytest.raises(ValueError, match=r"^--set optimizer=\{lr: x\}: optimizer\.lr must be a number"):
        load_config(good, ["optimizer={lr: x}"])
    good.write_text("optimizer: {lr: x}\n")
    with pytest.raises(ValueError, match=r"good\.yaml: optimizer\.lr must be a number"):
        load_config(good, ["seed=3"])


def test_patchsets_mix_hpatches_and_brown_folders_into_the_training_points(tmp_path, patchset):
    """data.patchsets: an hpatches-release folder adds its sequences, a Brown folder its patches with their
    info.txt points (kept apart from every other point); names must stay unique."""
    from descnet.data.phototour import write_phototour
    from descnet.training import load_training_data

    extra = tmp_path / "extra" / "hpatches-release"
    write_patchset(extra, sequences=2, rows=10, seed=5)
    for k in range(2):
        (extra / f"v_seq{k}").rename(extra / f"v_more{k}")
    brown_patches = point_patches(7, 4, seed=9, size=64).transpose(1, 0, 2, 3).reshape(-1, 64, 64)
    brown_labels = np.repeat(np.array([3, 8, 11, 40, 41, 42, 99]), 4)  # sparse ids, as info.txt may hold
    write_phototour(tmp_path / "brown", "points", brown_patches, brown_labels, np.array([[0, 1], [0, 4]]))
    cfg = load_config(None, tiny_overrides(patchset, **{
        "data.holdout": ["v_seq2"], "data.patchsets": [str(extra.parent), str(tmp_path / "brown" / "points")]}))
    points, pair_sets, _ = load_training_data(cfg["data"], 32, seed=0, num_pairs=100)
    base = load_training_data(load_config(None, tiny_overrides(patchset, **{"data.holdout": ["v_seq2"]}))["data"],
                              32, seed=0, num_pairs=100)[0]
    # 2 base sequences x 24 rows + 2 more x 10 rows, 3 types each; then 7 Brown points x 4 patches
    counts = np.bincount(points.labels)
    assert len(counts) == 48 + 20 + 7
    assert np.array_equal(counts, np.r_[np.full(68, 3), np.full(7, 4)])
    assert {p.tobytes() for p in base.patches} <= {p.tobytes() for p in points.patches[:-28]}
    brown32 = points.patches[-28:]
    from descnet.training.data import resize_patches
    assert np.array_equal(brown32, resize_patches(brown_patches, 32))
    assert np.array_equal(points.labels[-28:], 68 + np.repeat(np.arange(7), 4))
    assert pair_sets[0].pairs.shape == (100, 3)  # held-out validation unchanged
    # the same sequence names twice are refused, naming the folder
    cfg = load_config(None, tiny_overrides(patchset, **{"data.patchsets": [str(patchset)]}))
    with pytest.raises(ValueError, match="appears twice"):
        load_training_data(cfg["data"], 32)
    with pytest.raises(ValueError, match="data.patchsets must be a list of folders"):
        load_config(None, tiny_overrides(patchset, **{"data.patchsets": "x"}))
    with pytest.raises(ValueError, match="data.source phototour"):
        load_config(None, tiny_overrides(patchset, **{"data.source": "phototour", "data.patchsets": ["x"]}))
