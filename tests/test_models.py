"""The registry, the HardNet body (kornia parity), attention variants, baselines and weight loading."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from kornia import feature as KF

from descnet.models import (L2Net, WeightsError, create_model, list_models, load_weights, model_label,
                            resolve_model)
from tests.conftest import shared_file

LEARNED = ["hardnet", "hardnet-csa", "hardnet-sa", "tfeat", "sosnet", "hynet", "kornia-hardnet"]


def test_registry_lists_the_models():
    names = list_models()
    for name in LEARNED + ["pixels"]:
        assert name in names
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(TypeError, match="bad options for model 'hardnet'"):
        create_model("hardnet", no_such_option=1)


@pytest.mark.parametrize("name", LEARNED + ["pixels"])
def test_every_model_maps_patches_to_unit_descriptors(name):
    model = create_model(name).eval()
    x = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        d = model(x)
    assert d.shape == (5, model.descriptor_dim)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["hardnet", "hardnet-csa", "tfeat", "pixels"])
def test_models_reject_bad_input(name):
    model = create_model(name).eval()
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError):
        model(torch.rand(1, 32, 32))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


def test_hardnet_matches_kornia_with_copied_weights():
    torch.manual_seed(3)
    reference = KF.HardNet(pretrained=False)
    # make the BatchNorm statistics non-trivial so the comparison means something
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    reference.eval()
    ours = create_model("hardnet").eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    x = torch.rand(16, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-6)


def test_hardnet_follows_the_recipe():
    model = create_model("hardnet")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 and all(c.bias is None for c in convs)
    assert all(not bn.affine for bn in model.features if isinstance(bn, torch.nn.BatchNorm2d))
    assert [m.p for m in model.features if isinstance(m, torch.nn.Dropout)] == [0.3]
    # orthogonal init with gain 0.6: W W^T = 0.36 I for the (out, in*k*k) matrix (out <= in*k*k)
    w = convs[1].weight.detach().flatten(1)
    torch.testing.assert_close(w @ w.T, 0.36 * torch.eye(32), atol=1e-5, rtol=0)
    # per-patch standardisation: an affine change of intensity gives the same descriptor
    model.eval()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(0.5 * x + 0.2), atol=1e-5, rtol=0)


def test_attention_variants_share_the_hardnet_body():
    hardnet = create_model("hardnet").eval()
    for name, options in [("hardnet-csa", {}), ("hardnet-csa", {"placement": (32, 16), "num_bases": 16,
                                                                   "groups": 4}), ("hardnet-sa", {"placement": (16,)})]:
        model = create_model(name, **options).eval()
        missing, unexpected = model.load_state_dict(hardnet.state_dict(), strict=False)
        assert not unexpected and missing and all(k.startswith("attn") for k in missing)
        x = torch.rand(3, 1, 32, 32)
        with torch.no_grad():  # gamma = 0: an untrained attention block leaves the network unchanged
            torch.testing.assert_close(model(x), hardnet(x), rtol=0, atol=1e-6)
    both = create_model("hardnet-csa", placement=(16, 32))
    assert both.attn32.channels == 32 and both.attn16.channels == 64 and both.attn16.num_bases == 32
    with pytest.raises(ValueError, match="subset of"):
        L2Net(attention="csa", placement=(8,))


def test_load_weights_accepts_known_layouts(tmp_path):
    src = create_model("hardnet")
    state = src.state_dict()
    for i, obj in enumerate([state, {"state_dict": state, "epoch": 3},
                             {"module." + k: v for k, v in state.items()}]):
        path = tmp_path / f"w{i}.pth"
        torch.save(obj, path)
        dst = load_weights(create_model("hardnet"), path)
        for k, v in dst.state_dict().items():
            assert torch.equal(v, state[k])


def test_load_weights_errors_name_the_file_and_keys(tmp_path):
    path = tmp_path / "tfeat.pth"
    torch.save(create_model("tfeat").state_dict(), path)
    with pytest.raises(WeightsError, match=r"tfeat\.pth.*Missing keys: features\.0\.weight.*Unexpected keys"):
        load_weights(create_model("hardnet"), path)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04garbage that is no pickle")
    with pytest.raises(WeightsError, match="corrupt.pth: not a readable PyTorch weight file"):
        load_weights(create_model("hardnet"), corrupt)
    truncated = tmp_path / "truncated.pth"
    torch.save(create_model("hardnet").state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="truncated.pth"):
        load_weights(create_model("hardnet"), truncated)
    with pytest.raises(WeightsError, match="no such weight file"):
        load_weights(create_model("hardnet"), tmp_path / "missing.pth")


def test_load_weights_never_unpickles_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": create_model("hardnet").state_dict(), "payload": Evil()}, path)
    with pytest.raises(WeightsError, match="evil.pth"):
        load_weights(create_model("hardnet"), path)


def test_resolve_model_specs(tmp_path):
    assert isinstance(resolve_model("hardnet-csa:random"), L2Net)
    with pytest.raises(ValueError, match="architecture without weights"):
        resolve_model("hardnet-csa")  # never an untrained network by accident
    model = create_model("hardnet-csa", num_bases=8)
    ckpt = {"descnet": 1, "model": {"name": "hardnet-csa", "options": dict(model.descnet_options)},
            "state_dict": model.state_dict(), "epoch": 1}
    run = tmp_path / "run"
    run.mkdir()
    torch.save(ckpt, run / "last.pt")
    for spec in (run, run / "last.pt"):
        loaded = resolve_model(str(spec))
        assert loaded.attn32.num_bases == 8 and not loaded.training
        for k, v in loaded.state_dict().items():
            assert torch.equal(v, model.state_dict()[k])
    torch.save(create_model("hardnet").state_dict(), tmp_path / "bare.pth")
    assert not resolve_model(f"hardnet:{tmp_path / 'bare.pth'}").training
    with pytest.raises(WeightsError, match="not a descnet checkpoint"):
        resolve_model(str(tmp_path / "bare.pth"))
    with pytest.raises(ValueError, match="neither a trained model name"):
        resolve_model("no-such-model")
    with pytest.raises(WeightsError, match="best.pt"):
        resolve_model(str(tmp_path))
    assert model_label("tfeat:w/tfeat-liberty.params") == "tfeat-liberty"
    assert model_label("hardnet:random") == "hardnet-random"
    assert model_label("descnet-hardnet") == "descnet-hardnet"


def test_model_label_names_a_spec_and_the_module_resolved_from_it_alike():
    """One label function for SPECs and modules: tables, file names and feature files agree."""
    for spec in ("hardnet:random", "opencv-sift", "pixels"):
        assert model_label(resolve_model(spec)) == model_label(spec) == spec.replace(":", "-")
    assert model_label("runs/csa/best.pt") == "csa-best" and model_label("runs/csa/") == "csa"
    assert model_label(create_model("tfeat")) == "tfeat"  # not resolved from a SPEC: its registry name
    assert model_label(torch.nn.Linear(2, 2)) == "Linear"
    pixels = create_model("pixels")
    assert resolve_model(pixels) is pixels  # a module is taken as it is


def test_an_untrained_registry_model_is_the_same_network_every_time_and_leaves_the_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = resolve_model("hardnet-csa:random").state_dict()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is untouched
    torch.manual_seed(7)
    b = resolve_model("hardnet-csa:random").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = create_model("hardnet-csa").state_dict()  # create_model itself stays random, like timm's
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


@pytest.mark.parametrize("subset", ["liberty", "notredame", "yosemite"])
def test_published_tfeat_weights_give_unit_descriptors_on_real_patches(shared_data, subset):
    weights = shared_file(shared_data, f"weights/tfeat/tfeat-{subset}.params")
    stack = cv2.imread(str(shared_file(shared_data, "hpatches/patches_sample/ref.png")), cv2.IMREAD_GRAYSCALE)
    assert stack.shape == (1123 * 65, 65)
    patches = stack.reshape(-1, 65, 65)[:200]
    x = torch.from_numpy(np.stack([cv2.resize(p, (32, 32), interpolation=cv2.INTER_AREA) for p in patches]))
    x = x.float().div(255).unsqueeze(1)
    model = resolve_model(f"tfeat:{weights}")
    with torch.no_grad():
        d = model(x)
    assert d.shape == (200, 128) and torch.isfinite(d).all()
    torch.testing.assert_close(d.norm(dim=1), torch.ones(200), rtol=1e-5, atol=1e-5)
    # a trained descriptor separates different patches: they are not all the same vector
    assert torch.pdist(d).median() > 0.3
    # same weights through kornia's own TFeat (before L2-normalisation) give the same direction
    reference = KF.TFeat(pretrained=False)
    reference.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(d, torch.nn.functional.normalize(reference.eval()(x), dim=1), atol=1e-6, rtol=0)


def test_a_checkpoint_that_does_not_fit_its_architecture_names_the_file_and_keys(tmp_path):
    model = create_model("hardnet-csa", num_bases=8)
    state = dict(model.state_dict())
    state.pop("attn32.proj.weight", None) or state.pop(sorted(state)[0])
    ckpt = {"descnet": 1, "model": {"name": "hardnet-csa", "options": dict(model.descnet_options)},
            "state_dict": {**state, "extra.weight": torch.zeros(2)}}
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=r"bad\.pt: weights do not fit model 'hardnet-csa'.*Missing keys: .+\. "
                                           r"Unexpected keys: extra\.weight"):
        resolve_model(str(tmp_path / "bad.pt"))
    key = sorted(k for k, v in state.items() if v.ndim == 4)[0]
    torch.save({**ckpt, "state_dict": {**model.state_dict(), key: torch.zeros(1, 1, 1, 1)}}, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match=rf"shape\.pt: tensor shapes do not fit the model: {key} \(1, 1, 1, 1\)"):
        resolve_model(str(tmp_path / "shape.pt"))
    torch.save({**ckpt, "model": {"name": "hardnet-csa", "options": {"no_such_option": 1}}}, tmp_path / "opt.pt")
    with pytest.raises(WeightsError, match=r"opt\.pt: the checkpoint's model 'hardnet-csa' .* cannot be built"):
        resolve_model(str(tmp_path / "opt.pt"))
