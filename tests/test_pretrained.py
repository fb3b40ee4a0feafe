"""Trained models by name: the zoo's provenance, downloads into the cache (local HTTP server on 127.0.0.1:
resume, checksum failure, offline), the recorded input convention, HardTFeat, and no silent untrained network."""
from __future__ import annotations

import hashlib
import io
import socket

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from descnet.features.inference import as_patch_tensor, describe_patches
from descnet.models import create_model, resolve_model
from descnet.models import pretrained as zoo
from descnet.models.pretrained import DEFAULT_MODEL, PRETRAINED, PretrainedWeights
from descnet.models.spec import load_pretrained
from descnet.models.weights import WeightsError, pretrained_path

from tests.conftest import shared_file


def test_zoo_lists_the_published_families_with_provenance():
    names = set(PRETRAINED)
    assert {"hardnet-liberty", "hardnet-liberty-aug", "hardnet-notredame-aug", "hardnet-yosemite-aug", "hardnet++",
            "sosnet-liberty", "sosnet-hpatches-a", "hynet-liberty", "hynet-notredame", "hynet-yosemite",
            "tfeat-liberty", "tfeat-notredame", "tfeat-yosemite", "hardtfeat", "hardnet8"} <= names
    for entry in PRETRAINED.values():
        assert entry.paper and entry.training_data and entry.licence, entry.name
        if entry.shipped:
            assert not entry.urls and entry.resize == "antialias"
        else:
            assert entry.urls and all(u.startswith("https://") for u in entry.urls), entry.name
            assert entry.resize == "bilinear"  # HardNet-style cv2.resize convention of the published weights
    assert PRETRAINED[DEFAULT_MODEL].shipped


def _tfeat_file() -> bytes:
    torch.manual_seed(3)
    buffer = io.BytesIO()
    torch.save(create_model("tfeat").state_dict(), buffer)
    return buffer.getvalue()


def _entry(server, data: bytes, sha256: str | None = "auto", name: str = "tfeat-test") -> PretrainedWeights:
    server.files[f"/w/{name}.params"] = data
    digest = hashlib.sha256(data).hexdigest() if sha256 == "auto" else sha256
    return PretrainedWeights(name, "tfeat", f"{name}.params", "test weights", "paper", "data", "MIT",
                             (server.base + f"/w/{name}.params",), digest, len(data))


def test_download_once_into_the_cache_then_reuse(server, tmp_path):
    data = _tfeat_file()
    entry = _entry(server, data)
    path = pretrained_path(entry, tmp_path, progress=False)
    assert path == tmp_path / "tfeat-test.params" and path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfeat-test.params"]  # no .part leftovers
    requests = len(server.requests)
    assert pretrained_path(entry, tmp_path, progress=False) == path
    assert len(server.requests) == requests  # cached: no second request


def test_download_resumes_after_a_truncated_transfer(server, tmp_path):
    data = _tfeat_file()
    entry = _entry(server, data)
    server.truncate_at = 1000
    with pytest.raises(WeightsError, match="run the same command again to resume"):
        pretrained_path(entry, tmp_path, progress=False)
    assert not (tmp_path / "tfeat-test.params").exists()
    server.truncate_at = None
    assert pretrained_path(entry, tmp_path, progress=False).read_bytes() == data
    assert server.requests[-1][1] == "bytes=1000-"  # resumed with an HTTP range


def test_checksum_failure_leaves_nothing(server, tmp_path):
    entry = _entry(server, _tfeat_file(), sha256="0" * 64)
    with pytest.raises(WeightsError, match="corrupt or not the expected one"):
        pretrained_path(entry, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_cached_file_with_the_wrong_checksum_is_refused(server, tmp_path):
    entry = _entry(server, _tfeat_file())
    (tmp_path / entry.file).write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="does not have the sha256"):
        pretrained_path(entry, tmp_path, progress=False)


def test_offline_message_names_the_url_and_the_path(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    url = f"http://127.0.0.1:{port}/w/x.params"
    entry = PretrainedWeights("x", "tfeat", "x.params", "s", "p", "d", "MIT", (url,))
    with pytest.raises(WeightsError) as err:
        pretrained_path(entry, tmp_path, progress=False)
    assert url in str(err.value) and str(tmp_path / "x.params") in str(err.value)


def test_mirror_is_tried_first(server, tmp_path, monkeypatch):
    data = _tfeat_file()
    entry = _entry(server, data)
    server.files["/mirror/tfeat-test.params"] = data
    monkeypatch.setenv("DESCNET_MIRROR", server.base + "/mirror")
    pretrained_path(entry, tmp_path, progress=False)
    assert server.requests[0][0] == "/mirror/tfeat-test.params"


def test_a_name_resolves_to_the_weights_and_records_the_input_convention(server, tmp_path, monkeypatch):
    data = _tfeat_file()
    entry = _entry(server, data)
    monkeypatch.setitem(zoo.PRETRAINED, entry.name, entry)
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path))
    model = resolve_model(entry.name)
    assert (tmp_path / "weights" / entry.file).is_file()
    assert model.descnet_trained and model.descnet_resize == "bilinear" and model.descnet_spec == entry.name
    reference = create_model("tfeat").eval()
    reference.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    x = torch.rand(5, 1, 32, 32)
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    # 65x65 patches go through the model's own resize convention (plain bilinear, as cv2.resize)
    patches = (np.random.default_rng(0).random((7, 65, 65)) * 255).astype(np.uint8)
    got = describe_patches(model, patches, backend="eager")
    expected = reference(as_patch_tensor(patches, 32, "bilinear"))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, reference(as_patch_tensor(patches, 32, "antialias")), atol=1e-3)


def test_bilinear_resize_is_cv2_resize():
    rng = np.random.default_rng(1)
    patch = rng.random((65, 65)).astype(np.float32)
    ours = as_patch_tensor(torch.from_numpy(patch)[None], 32, "bilinear")[0, 0].numpy()
    theirs = cv2.resize(patch, (32, 32), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours - theirs).max() < 1e-5
    with pytest.raises(ValueError, match="resize must be one of"):
        as_patch_tensor(torch.from_numpy(patch)[None], 32, "nearest")


def test_bare_architecture_is_refused_and_random_is_explicit():
    with pytest.raises(ValueError, match="hardnet:random"):
        resolve_model("hardnet")
    a, b = resolve_model("hardnet:random"), resolve_model("hardnet:random")
    assert a.descnet_trained is False and a.descnet_spec == "hardnet:random"
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())  # seed 0
    assert resolve_model("rootsift").descnet_trained  # hand-crafted baselines need no weights


def test_hardtfeat_loads_the_published_file_and_matches_its_definition(shared_data, tmp_path, monkeypatch):
    path = shared_file(shared_data, "weights/hardtfeat/HardTFeat.pth")
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "HardTFeat.pth").write_bytes(path.read_bytes())  # as if fetched by hand
    model = resolve_model("hardtfeat")
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    x = torch.rand(6, 1, 32, 32, dtype=torch.float64)
    # AffNet's HardTFeatNet.forward, written out in float64
    flat = x.view(6, -1)
    y = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-7)
    y = torch.tanh(F.conv2d(y, state["features.0.weight"].double(), state["features.0.bias"].double()))
    y = F.max_pool2d(y, 2, 2)
    y = torch.tanh(F.conv2d(y, state["features.3.weight"].double(), state["features.3.bias"].double()))
    y = torch.tanh(F.conv2d(y, state["classifier.1.weight"].double(), state["classifier.1.bias"].double()))
    y = y.view(6, -1)
    expected = y / torch.sqrt((y * y).sum(1, keepdim=True) + 1e-8)
    assert torch.allclose(model(x.float()).double(), expected, atol=1e-5)


def test_published_tfeat_checksum_is_the_shared_file(shared_data):
    path = shared_file(shared_data, "weights/tfeat/tfeat-liberty.params")
    entry = PRETRAINED["tfeat-liberty"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256 and path.stat().st_size == entry.size


def test_load_pretrained_refuses_unknown_names():
    with pytest.raises(KeyError, match="no pretrained weights named"):
        load_pretrained("nope")


# ------------------------------------------------------------------------------------ shipped weights

def _probe_patches():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "ship_weights.py"
    spec = importlib.util.spec_from_file_location("ship_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.probe_patches()


@pytest.mark.parametrize("name", ["descnet-hardnet", "descnet-hardnet-csa"])
def test_shipped_weights_load_and_give_the_cards_probe(name):
    model = resolve_model(name)
    assert model.descnet_trained and model.descnet_resize == "antialias"
    stored = torch.load(zoo.SHIPPED_DIR / f"{name}.pt", map_location="cpu", weights_only=True)
    assert all(t.dtype in (torch.float16, torch.int64) for t in stored["state_dict"].values())  # small file
    with torch.inference_mode():
        got = model(_probe_patches())
    expected = torch.tensor(stored["info"]["probe"]["values"])
    assert torch.allclose(got[:, :expected.shape[1]], expected, atol=1e-5)
    assert torch.allclose(got[0, :4], torch.tensor(SHIPPED_PROBES[name]), atol=2e-4)  # the card's numbers
    card = (zoo.SHIPPED_DIR / f"{name}.md").read_text()
    assert f"Model card: `{name}`" in card and "Held-out figures" in card


#: the first 4 dimensions of the shipped models on the first probe patch (also printed in their model cards)
SHIPPED_PROBES = {"descnet-hardnet": [0.072, 0.004, 0.1408, 0.2301], "descnet-hardnet-csa": [-0.1089, -0.0072, 0.1072, -0.0096]}


def test_the_default_model_is_used_when_none_is_given(shared_data):
    import descnet

    image = shared_file(shared_data, "oxford-affine/graf/img1.png")
    features = descnet.describe(image, options=descnet.KeypointOptions(max_keypoints=50))
    assert features.info["model"] == DEFAULT_MODEL and features.descriptors.shape == (50, 128)


#: Where each published file is in its authors' repository: (repository, branch, path). Checked against the
#: repositories' trees (DagnyT/hardnet master 35bc1d7, yuruntian/SOSNet master 7ae3730, ducha-aiki/Key.Net-Pytorch
#: main 74fe0a7 (kornia's HyNet source), vbalnt/tfeat master 9434ffa, ducha-aiki/affnet master da7cf51; HardTFeat's
#: size 2,401,008 bytes is the tree's). DagnyT/hardnet's master has no no-aug notredame/yosemite files (removed in
#: b606d53, 2018): only the augmented ones.
PUBLISHED_FILES = {
    "hardnet-liberty": ("DagnyT/hardnet", "master", "pretrained/train_liberty/checkpoint_liberty_no_aug.pth"),
    "hardnet-liberty-aug": ("DagnyT/hardnet", "master",
                            "pretrained/train_liberty_with_aug/checkpoint_liberty_with_aug.pth"),
    "hardnet-notredame-aug": ("DagnyT/hardnet", "master",
                              "pretrained/train_notredame_with_aug/checkpoint_notredame_with_aug.pth"),
    "hardnet-yosemite-aug": ("DagnyT/hardnet", "master",
                             "pretrained/train_yosemite_with_aug/checkpoint_yosemite_with_aug.pth"),
    "hardnet++": ("DagnyT/hardnet", "master", "pretrained/pretrained_all_datasets/HardNet++.pth"),
    "sosnet-liberty": ("yuruntian/SOSNet", "master", "sosnet-weights/sosnet_32x32_liberty.pth"),
    "sosnet-hpatches-a": ("yuruntian/SOSNet", "master", "sosnet-weights/sosnet_32x32_hpatches_a.pth"),
    "hynet-liberty": ("ducha-aiki/Key.Net-Pytorch", "main", "model/HyNet/weights/HyNet_LIB.pth"),
    "hynet-notredame": ("ducha-aiki/Key.Net-Pytorch", "main", "model/HyNet/weights/HyNet_ND.pth"),
    "hynet-yosemite": ("ducha-aiki/Key.Net-Pytorch", "main", "model/HyNet/weights/HyNet_YOS.pth"),
    "tfeat-liberty": ("vbalnt/tfeat", "master", "pretrained-models/tfeat-liberty.params"),
    "tfeat-notredame": ("vbalnt/tfeat", "master", "pretrained-models/tfeat-notredame.params"),
    "tfeat-yosemite": ("vbalnt/tfeat", "master", "pretrained-models/tfeat-yosemite.params"),
    "hardtfeat": ("ducha-aiki/affnet", "master", "HardTFeat.pth"),
}
#: Entries hosted outside GitHub: the URL kornia itself downloads them from (``kornia.feature.hardnet.urls``).
KORNIA_HOSTED = {"hardnet8": "hardnet8v2"}


def test_every_published_url_is_the_file_in_the_authors_repository():
    published = {e.name for e in PRETRAINED.values() if not e.shipped}
    assert published == set(PUBLISHED_FILES) | set(KORNIA_HOSTED), "list a new published entry above"
    for name, (repo, branch, path) in PUBLISHED_FILES.items():
        entry = PRETRAINED[name]
        assert entry.urls[0] == f"https://github.com/{repo}/raw/{branch}/{path}", name
        assert entry.file == path.rsplit("/", 1)[-1], name
    assert PRETRAINED["hardtfeat"].size == 2401008


def test_kornia_hosted_entries_use_kornias_url():
    from kornia.feature import hardnet as kornia_hardnet

    for name, key in KORNIA_HOSTED.items():
        known = kornia_hardnet.urls[key]
        known = [known] if isinstance(known, str) else list(known)
        assert PRETRAINED[name].urls[0] in known, name
