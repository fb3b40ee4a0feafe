"""Write ``notebooks/demo.ipynb`` (without outputs) from the cells below.

    .venv/bin/python tools/make_demo_notebook.py            # rewrite the notebook
    .venv/bin/python tools/make_demo_notebook.py --execute  # also run it once here (outputs not saved)

Edit the cells here, not in Jupyter, so the notebook stays small and reviewable; ``tests/test_notebook.py``
executes the notebook and checks the numbers its last cell prints.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "demo.ipynb"

CELLS = [
    ("md", """\
# descnet in ten minutes: data, training, matching, evaluation

This notebook walks through descnet's Python API on data it makes itself (no downloads), in about a
minute or two on a CPU:

1. **Data**: render a few synthetic image sequences with exact homographies and cut HPatches-style
   patches from them.
2. **Training**: train a HardNet for a few dozen steps with the library's `Trainer`.
3. **Matching**: describe an image pair, match, verify with a homography and draw the matches.
4. **Evaluation**: the HPatches matching task on held-out sequences, against RootSIFT and the untrained network.

Every step is one or two library calls; the same calls sit behind the `descnet` command line
(`descnet data synth`, `descnet train`, `descnet match`, `descnet eval hpatches`). The numbers here come from
a toy run (a thousand training pairs instead of HardNet's 50 million), so read them as a demonstration,
not as a benchmark."""),
    ("code", """\
import copy
import json
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import descnet

SEED = 0
MODEL = "hardnet"  # any trainable registry name: "hardnet-csa" adds compressed self-attention (about 2x slower)
WORK = Path(tempfile.mkdtemp(prefix="descnet-demo-"))  # everything this notebook writes goes here
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: text bars are fine
print("descnet", descnet.__version__, "| torch", torch.__version__, "| working folder", WORK)"""),

    ("md", """\
## 1. Data: synthetic sequences and HPatches-style patches

`write_synthetic_sequences` renders sequences in the HPatches full-image layout (`1.ppm`..`6.ppm` and the
homographies `H_1_2`..`H_1_6`): `v_*` sequences change the viewpoint (rotation, zoom, perspective), `i_*`
sequences the illumination. Image *k* is the scene seen through `H_1_k`, so the ground truth is exact.
`ImageSequences` reads any folder in that layout (real HPatches too)."""),
    ("code", """\
from descnet.data.sequences import ImageSequences
from descnet.data.synth import SynthOptions, write_synthetic_sequences

write_synthetic_sequences(WORK / "synth", count=10, seed=SEED, options=SynthOptions(size=(480, 360)))
sequences = ImageSequences(WORK / "synth")
print(len(sequences), "sequences:", ", ".join(sequences.names))

seq = sequences["v_synth008"]
print("image 1:", seq.image(1).shape, seq.image(1).dtype, "| H_1_4 (maps image-1 pixels to image 4):")
print(np.round(seq.homographies[4], 3))
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, k in zip(axes, (1, 4, 6)):
    ax.imshow(seq.image(k, gray=False))
    ax.set_title(f"{seq.name}, image {k}")
    ax.axis("off")
plt.show()"""),
    ("md", """\
`sequence_patches` builds HPatches-style patches in memory, as the HPatches authors did: SIFT (DoG)
keypoints in image 1, one dominant orientation, a square region of 5x the detected scale, then the
region is reprojected into images 2..6 with the ground-truth homography, with the *easy*, *hard* and
*tough* affine jitter that imitates detector noise. The result is a dict
`{type: uint8 (N, 65, 65)}` for the 16 types `ref, e1..e5, h1..h5, t1..t5`; **row i is the same scene point in
every type**."""),
    ("code", """\
from descnet.data.patchify import PatchifyOptions, sequence_patches

patches = {s.name: sequence_patches(s, PatchifyOptions(max_points=300), seed=SEED) for s in sequences}
for name, stacks in patches.items():
    print(f"{name}: {len(stacks)} types x {stacks['ref'].shape} {stacks['ref'].dtype}")

# rows of one sequence: the same 8 points as ref, e1, h1, t1 (jitter grows left to right within a row)
types = ["ref", "e1", "h1", "t1"]
grid = np.vstack([np.hstack([patches["v_synth002"][t][i] for t in types]) for i in range(8)])
plt.figure(figsize=(3, 6))
plt.imshow(grid, cmap="gray")
plt.title(" | ".join(types))
plt.axis("off")
plt.show()"""),

    ("md", """\
## 2. Training with the `Trainer`

Two sequences (one viewpoint, one illumination) are held out for steps 3 and 4; the others are training
data. `points_from_sequences` turns HPatches-layout patches into `PatchPoints`: uint8 patches `(N, 32, 32)`
resized to the network's input with the inference path's anti-aliased resize, and the int64 3D point id
`(N,)` of each (one id per `(sequence, row)`).

A config is a nested dict over `descnet.training.DEFAULTS` (the HardNet recipe: batch 1024, SGD lr 10
decayed linearly to 0, momentum 0.9, hardest-in-batch triplet loss with margin 1 and anchor swap).
`load_config` applies `KEY=VALUE` overrides exactly as `descnet train --set KEY=VALUE` does and checks
every key. Here: 30 steps of 32 pairs with Adam (lr 1e-3, still decayed linearly), which moves faster than
SGD over so few steps; `augmentation.flip=true`, `augmentation.rot90=true` would give HardNet+.
Each step the `PairSampler` draws `batch_size` (anchor, positive) pairs from distinct points, the network
describes both sets `(B, 1, 32, 32) -> (B, 128)` and the loss mines the hardest negative of each pair
inside the batch."""),
    ("code", """\
from descnet.training import Trainer, load_config
from descnet.training.data import points_from_sequences

held_out = ["i_synth009", "v_synth008"]
train_names = [name for name in patches if name not in held_out]
points = points_from_sequences({name: (lambda types, p=patches[name]: p) for name in train_names},
                               types=None, size=32)
print("training patches", points.patches.shape, points.patches.dtype,
      "| 3D points", len(np.unique(points.labels)))

config = load_config(overrides=[
    f"model.name={MODEL}", f"seed={SEED}",
    "batch_size=32", "pairs_per_epoch=960", "epochs=1",  # 30 steps of 32 pairs
    "optimizer.name=adam", "optimizer.lr=0.001",         # faster than HardNet's SGD over so few steps
    "runtime.device=cpu", "runtime.progress=false", "runtime.log_every=5",
])
trainer = Trainer(config, WORK / "run", data=points)  # data in memory: the config's data section is not read
untrained = copy.deepcopy(trainer.model).eval()       # the exact initial weights, for step 4
summary = trainer.fit()
print("steps:", summary["steps"], "| run folder:", sorted(p.name for p in (WORK / "run").iterdir()))"""),
    ("md", """\
The run folder holds the config as run, the environment, `metrics.jsonl` (a row every `log_every` steps)
and the checkpoint `last.pt` (`best.pt` too when validation data are configured). Any command or function
that takes a model SPEC accepts the run folder: `descnet.models.resolve_model` loads the model in eval mode."""),
    ("code", """\
rows = [json.loads(line) for line in (WORK / "run" / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in rows if r["kind"] == "step"]
plt.figure(figsize=(5, 3))
plt.plot([r["step"] for r in steps], [r["loss"] for r in steps], "o-", label="triplet loss")
plt.plot([r["step"] for r in steps], [r["neg"] - r["pos"] for r in steps], "s-",
         label="hardest negative - positive distance")
plt.xlabel("step")
plt.legend()
plt.show()

model = descnet.resolve_model(WORK / "run")  # the trained network, from last.pt
print(type(model).__name__, "| input", model.patch_size, "px | descriptor", model.descriptor_dim, "floats")"""),

    ("md", """\
## 3. Describing and matching an image pair

`descnet.describe(image, model=...)` detects SIFT keypoints (OpenCV), turns each into a local affine
frame (region half-side 6x the keypoint size, orientation from the keypoint), cuts anti-aliased patches
with kornia and describes them: `keypoints (N, 4)` as `x, y, size, angle` and `descriptors (N, 128)`.
`descnet.match` finds mutual nearest neighbours, `verify` fits a homography with MAGSAC++ and marks the
inliers. On synthetic data we can also check every match against the true homography."""),
    ("code", """\
from descnet.features.matching import draw_matches, verify

image1, image2 = seq.image(1), seq.image(6)  # the hardest pair of a held-out viewpoint sequence
truth = seq.homographies[6]


def match_images(net):
    f1 = descnet.describe(image1, model=net, options=descnet.KeypointOptions(max_keypoints=500))
    f2 = descnet.describe(image2, model=net, options=descnet.KeypointOptions(max_keypoints=500))
    m = descnet.match(f1.descriptors, f2.descriptors)  # (M, 2) indices, mnn
    p1, p2 = f1.keypoints[m.indices[:, 0], :2], f2.keypoints[m.indices[:, 1], :2]
    v = verify(p1, p2, "homography")
    projected = np.c_[p1, np.ones(len(p1))] @ truth.T
    correct = np.linalg.norm(projected[:, :2] / projected[:, 2:] - p2, axis=1) < 3  # within 3 px of the truth
    return f1, f2, p1, p2, v, correct


pair = {}
for label, net in (("trained", model), ("opencv-rootsift", "opencv-rootsift")):
    f1, f2, p1, p2, v, correct = match_images(net)
    pair[label] = {"keypoints": [len(f1.keypoints), len(f2.keypoints)], "matches": len(p1),
                   "inliers": int(v.inliers.sum()), "correct_matches": int(correct.sum()),
                   "correct_inliers": int((correct & v.inliers).sum())}
    print(f"{label:16s}", pair[label])
    if label == "trained":
        descriptor_shape = f1.descriptors.shape
        print("descriptors:", f1.descriptors.shape, f1.descriptors.dtype, "| keypoints:", f1.keypoints.shape)
        picture = draw_matches(image1, image2, p1, p2, v.inliers,
                               caption=f"{MODEL} (demo training): {v.inliers.sum()} inliers of {len(p1)} matches")
plt.figure(figsize=(12, 5))
plt.imshow(picture)
plt.axis("off")
plt.show()"""),

    ("md", """\
## 4. HPatches-style evaluation on the held-out sequences

The patch tasks of HPatches work on the patch stacks directly. `describe_hpatches` describes every type of
every sequence (patches are resized to each model's input size) and `evaluate_matching` runs the
matching task exactly as the official benchmark does: for every ref patch, its nearest neighbour among
the patches of image k; correct when it is the same row; average precision over the NN distances; mAP per
jitter level (easy, hard, tough) and their mean. We compare the trained network with its own initial
weights and with RootSIFT (the registry's patch-based RootSIFT)."""),
    ("code", """\
from descnet.eval.hpatches import describe_hpatches, evaluate_matching

# the first 80 rows (strongest detections) of each held-out sequence: 2 x 16 x 80 patches per model
held_patches = {name: {t: stack[:80] for t, stack in patches[name].items()} for name in held_out}
evaluation = {}
for label, net in (("trained", model), ("untrained", untrained), ("rootsift", descnet.create_model("rootsift"))):
    descs = describe_hpatches(net, held_patches, name=label)
    evaluation[label] = evaluate_matching(descs)
    m_ap = evaluation[label]["mAP"]
    print(f"{label:10s} matching mAP: easy {m_ap['e']:.3f}  hard {m_ap['h']:.3f}  tough {m_ap['t']:.3f}"
          f"  mean {evaluation[label]['mean']:.3f}")"""),
    ("md", """\
A few dozen steps already move the network well past its random initialisation; RootSIFT stays ahead
here. Closing that gap takes the real recipe: `descnet train` with `configs/hardnet+.yaml` on Brown or on
many more sequences (`data.source=synthetic`, `data.count=...`), then `descnet eval hpatches` on the real
benchmark. The last cell collects this notebook's key numbers (the test suite reads them)."""),
    ("code", """\
results = {
    "model": MODEL,
    "training": {"steps": summary["steps"], "patches": int(len(points.patches)),
                 "points": int(len(np.unique(points.labels))),
                 "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"]},
    "pair": pair,
    "descriptor_shape": list(descriptor_shape),
    "matching_map": {label: evaluation[label]["mean"] for label in evaluation},
    "held_out_rows": {name: int(len(held_patches[name]["ref"])) for name in held_out},
}
print(json.dumps(results))"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    nb = new_notebook(cells=[new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="also execute it here (outputs are not saved)")
    args = parser.parse_args()
    nb = build()
    nbformat.validate(nb)
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    from descnet.io import atomic_path

    with atomic_path(NOTEBOOK) as tmp:
        nbformat.write(nb, str(tmp))
    print(f"wrote {NOTEBOOK}")
    if args.execute:
        from nbclient import NotebookClient

        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
        print(f"executed in {time.perf_counter() - start:.1f} s; last output:")
        for out in nb.cells[-1].outputs:
            sys.stdout.write(out.get("text", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
