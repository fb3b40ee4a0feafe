"""Trained weights by name: descnet's own (shipped in the package) and published ones (downloaded once).

A pretrained name is a model SPEC like any other (``descnet describe --model hardnet-liberty``); it names
an architecture of the registry, a weight file and where the file comes from:

* **shipped** -- descnet's own weights in ``descnet/weights/`` (installed with the package, no download),
  each with a model card ``<name>.md`` beside it; :data:`DEFAULT_MODEL` is the one every command uses
  when no model is given.
* **published** -- the authors' files: official URL first, known mirrors after, the sha256 where it could
  be confirmed. :func:`descnet.models.weights.fetch_pretrained` downloads one on first use into
  ``$DESCNET_CACHE/weights`` (default ``~/.cache/descnet/weights``), resuming, checking size and checksum
  and moving it into place atomically; offline, the error names the URL and the exact path where a file
  fetched by hand should go.

Each entry also records the *input convention* its authors used (``resize``, see
:data:`descnet.features.inference.RESIZE_METHODS`): HardNet, SOSNet and HyNet were trained and evaluated on patches
shrunk with ``cv2.resize`` (bilinear, no anti-aliasing: ``hpatches_extract_HardNet.py``), descnet's own
weights on anti-aliased patches. The model built from an entry carries it (``model.descnet_resize``) and
the inference path resizes with it, so published numbers can be reproduced.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PretrainedWeights", "PRETRAINED", "DEFAULT_MODEL", "SHIPPED_DIR", "pretrained_entry",
           "list_pretrained"]

#: where descnet's own weights live (package data)
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the model every command uses when none is given: the best shipped one on the held-out figures of the
#: model cards (the only one ahead of RootSIFT and the untrained network on all of them)
DEFAULT_MODEL = "descnet-hardnet-csa"


@dataclass(frozen=True)
class PretrainedWeights:
    """One trained weight file and its provenance.

    Attributes:
        name: the SPEC name, e.g. ``hardnet-liberty``.
        architecture: registry name of the network (``create_model(architecture, **options)``).
        file: file name in the package (shipped) or in the download cache.
        summary: one line for ``descnet models``.
        paper, training_data, licence: provenance, shown by ``descnet models``.
        urls: official URL first, then mirrors (none for shipped weights).
        sha256: checksum of the file where it could be confirmed, else ``None`` (size and format checks only).
        size: bytes, where known.
        shipped: the file is in :data:`SHIPPED_DIR` (descnet's own weights).
        resize: input convention (:data:`descnet.features.inference.RESIZE_METHODS`).
        drop_keys: prefixes of tensors in the file that the network does not use (e.g. HardTFeat's ``SIFT.*``).
        options: architecture options.
        matching: the recommended matcher ``{"matcher", "ratio"}`` (descnet's weights: chosen on their training
            data, :mod:`descnet.eval.matcher_choice`; the same as the file's ``info["matching"]``), or ``None``.
    """

    name: str
    architecture: str
    file: str
    summary: str
    paper: str = ""
    training_data: str = ""
    licence: str = ""
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    shipped: bool = False
    resize: str = "bilinear"
    drop_keys: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    matching: dict[str, Any] | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        """What ``descnet models --json`` and result files record about these weights."""
        return {"name": self.name, "architecture": self.architecture, "paper": self.paper,
                "training_data": self.training_data, "licence": self.licence,
                "source": "shipped with descnet" if self.shipped else (self.urls[0] if self.urls else None),
                "sha256": self.sha256, "resize": self.resize, "matching": self.matching}


_HARDNET = "Mishchuk et al., Working hard to know your neighbor's margins, NeurIPS 2017"
_HARDNET_URL = "https://github.com/DagnyT/hardnet/raw/master/pretrained/"
_SOSNET = "Tian et al., SOSNet: Second order similarity regularization, CVPR 2019"
_SOSNET_URL = "https://github.com/yuruntian/SOSNet/raw/master/sosnet-weights/"
_HYNET = "Tian et al., HyNet: Learning local descriptor with hybrid similarity measure, NeurIPS 2020"
_HYNET_URLS = ("https://github.com/ducha-aiki/Key.Net-Pytorch/raw/main/model/HyNet/weights/",)  # kornia's source
_TFEAT = "Balntas et al., Learning local feature descriptors with triplets and shallow CNNs, BMVC 2016"
_TFEAT_URL = "https://github.com/vbalnt/tfeat/raw/master/pretrained-models/"
_BROWN = "UBC Phototour (Brown) {}"


def _hardnet(name: str, path: str, data: str, summary: str) -> PretrainedWeights:
    return PretrainedWeights(name, "hardnet", Path(path).name, summary, _HARDNET, data, "MIT",
                             (_HARDNET_URL + path,))


def _tfeat(subset: str, sha256: str) -> PretrainedWeights:
    return PretrainedWeights(f"tfeat-{subset}", "tfeat", f"tfeat-{subset}.params",
                             f"TFeat trained on {subset} (published)", _TFEAT, _BROWN.format(subset), "MIT",
                             (_TFEAT_URL + f"tfeat-{subset}.params",), sha256, 2400533)


def _hynet(code: str, subset: str) -> PretrainedWeights:
    return PretrainedWeights(f"hynet-{subset}", "hynet", f"HyNet_{code}.pth", f"HyNet trained on {subset} (published)",
                             _HYNET, _BROWN.format(subset), "see the authors' repository",
                             tuple(u + f"HyNet_{code}.pth" for u in _HYNET_URLS))


#: the recommended matcher of each shipped weights file (its info["matching"] and model card: chosen by
#: `tools/ship_weights.py matcher` on its training sequences, never on held-out or evaluation scenes)
_RECOMMENDED = {"descnet-hardnet": {"matcher": "smnn", "ratio": 0.92},
                "descnet-hardnet-csa": {"matcher": "smnn", "ratio": 0.92}}
_SHIPPED_DATA = ("Oxford bark/trees/ubc/wall, HPatches v_churchill, synthetic sequences of the EVD photos; then also "
                 "rendered 3D scenes of the EVD photos and Strecha Herz-Jesus-P8's 3D points")

_ENTRIES = [
    # descnet's own weights (descnet/weights/, model cards beside them)
    PretrainedWeights("descnet-hardnet", "hardnet", "descnet-hardnet.pt",
                      "descnet's HardNet, trained on real + synthetic sequences and 3D scenes (card: descnet/weights)",
                      "this package (configs/descnet-hardnet{,-3d}.yaml, tools/train_descnet_weights.sh)",
                      _SHIPPED_DATA, "MIT", shipped=True, resize="antialias",
                      matching=_RECOMMENDED["descnet-hardnet"]),
    PretrainedWeights("descnet-hardnet-csa", "hardnet-csa", "descnet-hardnet-csa.pt",
                      "descnet's HardNet + CSA, same data (the default; card: descnet/weights)",
                      "this package (configs/descnet-hardnet-csa{,-3d}.yaml, tools/train_descnet_weights.sh)",
                      _SHIPPED_DATA, "MIT", shipped=True, resize="antialias",
                      matching=_RECOMMENDED["descnet-hardnet-csa"],
                      options={"placement": (32,), "num_bases": 32, "groups": 2, "temperature": 14.0}),
    # HardNet (DagnyT/hardnet; kornia.feature.HardNet(pretrained=True) is liberty-aug)
    _hardnet("hardnet-liberty", "train_liberty/checkpoint_liberty_no_aug.pth", _BROWN.format("liberty"),
             "HardNet trained on liberty (published)"),
    _hardnet("hardnet-liberty-aug", "train_liberty_with_aug/checkpoint_liberty_with_aug.pth",
             _BROWN.format("liberty") + ", flip/rot90 augmentation", "HardNet trained on liberty + aug (published; "
             "kornia's default)"),
    # notredame and yosemite: the authors' master holds only the flip/rot90-augmented files (the no-aug ones
    # were removed in 2018, DagnyT/hardnet b606d53; the aug ones re-added in 2020, 644b36e)
    _hardnet("hardnet-notredame-aug", "train_notredame_with_aug/checkpoint_notredame_with_aug.pth",
             _BROWN.format("notredame") + ", flip/rot90 augmentation", "HardNet trained on notredame + aug (published)"),
    _hardnet("hardnet-yosemite-aug", "train_yosemite_with_aug/checkpoint_yosemite_with_aug.pth",
             _BROWN.format("yosemite") + ", flip/rot90 augmentation", "HardNet trained on yosemite + aug (published)"),
    _hardnet("hardnet++", "pretrained_all_datasets/HardNet++.pth",
             "Brown liberty + notredame + yosemite and HPatches (all)", "HardNet++ (published; all datasets)"),
    PretrainedWeights("hardnet8", "hardnet8", "hardnet8v2.pt", "HardNet8 (kornia's hosted weights)",
                      "Pultar, Improving the HardNet descriptor, 2020 (arXiv:2007.09699)",
                      "Brown liberty + notredame + yosemite, HPatches, AMOS (HardNet8v2)", "MIT",
                      ("https://cmp.felk.cvut.cz/~mishkdmy/hardnet8v2.pt",)),
    # SOSNet
    PretrainedWeights("sosnet-liberty", "sosnet", "sosnet_32x32_liberty.pth", "SOSNet trained on liberty (published)",
                      _SOSNET, _BROWN.format("liberty"), "see the authors' repository",
                      (_SOSNET_URL + "sosnet_32x32_liberty.pth",)),
    PretrainedWeights("sosnet-hpatches-a", "sosnet", "sosnet_32x32_hpatches_a.pth",
                      "SOSNet trained on HPatches split a (published)", _SOSNET, "HPatches split a (train)",
                      "see the authors' repository", (_SOSNET_URL + "sosnet_32x32_hpatches_a.pth",)),
    # HyNet
    _hynet("LIB", "liberty"), _hynet("ND", "notredame"), _hynet("YOS", "yosemite"),
    # TFeat (checksums of the published files, confirmed on the copies in the shared data)
    _tfeat("liberty", "1f2e9516b03c45876161da006ce8047e0a66ef08cc91d3fbf96a75f1a80f445a"),
    _tfeat("notredame", "71b9fe3e2a5ec4b90eb5c92c9eb0565504fba8bd2b6a7fa3b7e79d9df6e146a6"),
    _tfeat("yosemite", "548d65103b9e4d7c1f9242d613df96df14a456a2b44565f2c7faed7cbd928e8d"),
    # HardTFeat: the TFeat architecture trained with the HardNet loss (AffNet's repository)
    PretrainedWeights("hardtfeat", "hardtfeat", "HardTFeat.pth", "HardTFeat: TFeat trained with the HardNet loss "
                      "(published)", "Mishkin et al., Repeatability is not enough (AffNet), ECCV 2018",
                      "HPatches (AffNet's training set-up)", "MIT",
                      ("https://github.com/ducha-aiki/affnet/raw/master/HardTFeat.pth",),
                      "cd935728293309b666c20525696c8d323be5ffdac07b3340f4c1c1314e0b6542", 2401008,
                      drop_keys=("SIFT.",)),
]
PRETRAINED: dict[str, PretrainedWeights] = {e.name: e for e in _ENTRIES}


def list_pretrained() -> list[str]:
    """Names of all pretrained weights, shipped first."""
    return [e.name for e in _ENTRIES]


def pretrained_entry(name: str) -> PretrainedWeights | None:
    """The entry named ``name``, or ``None``."""
    return PRETRAINED.get(name)
