"""The fast inference path: BatchNorm folding, the fused CSA, backends of describe_patches, the cache."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from descnet.models.fusion import FusedCSA, fold_batchnorm, fuse_for_inference
from descnet.features import inference
from descnet.features.inference import PatchDescriber, as_patch_tensor, describe_patches, onnxruntime_available
from descnet.models import CompressedSelfAttention, create_model

needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime (optional extra) not installed")


def randomise(model: nn.Module, seed: int = 0, gamma: float = 0.7) -> nn.Module:
    """Non-trivial BatchNorm statistics / affine terms and attention gammas, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            if isinstance(getattr(m, "gamma", None), nn.Parameter):
                m.gamma.fill_(gamma)
    return model


def csa_reference(block: CompressedSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """docs/csa.md, literally, in float64: ``(B, C, H, W) -> (B, C, H, W)``."""
    x = x.double()
    b, c, h, w = x.shape
    g, m, n, s = block.groups, block.num_bases, h * w, block.temperature
    flat = x.reshape(b, c, n)

    def conv1x1(conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bcn->bon", conv.weight.double().flatten(1), t) + conv.bias.double()[None, :, None]

    q = conv1x1(block.query, flat)
    q = q / q.norm(dim=1, keepdim=True)
    bases = block.bases.double()
    bases = bases / bases.norm(dim=1, keepdim=True)
    e = s * torch.einsum("kq,bqn->bkn", bases, q).reshape(b, g, m, n)
    a = torch.softmax(e, dim=3)  # over positions
    weights = torch.softmax(e, dim=2)  # over bases
    v = conv1x1(block.value, flat).reshape(b, g, c // g, n)
    o = torch.einsum("bgmn,bgcn->bgcm", a, v)
    y = torch.einsum("bgcm,bgmn->bgcn", o, weights).reshape(b, c, n)
    z = conv1x1(block.out, y)
    return (flat + block.gamma.double() * z).reshape(b, c, h, w)


# ------------------------------------------------------------------------------------------ folding


@pytest.mark.parametrize("affine,bias,stride", [(False, False, 1), (True, True, 2), (True, False, 1)])
def test_fold_batchnorm_matches_float64(affine, bias, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=stride, padding=1, bias=bias)
    bn = randomise(nn.BatchNorm2d(5, affine=affine)).eval()
    x = torch.randn(4, 3, 9, 9)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x.double(), conv.weight.double(),
                                       None if conv.bias is None else conv.bias.double(), stride, 1)
        mean, var = bn.running_mean.double()[:, None, None], bn.running_var.double()[:, None, None]
        expected = (y - mean) / torch.sqrt(var + bn.eps)
        if affine:
            expected = expected * bn.weight.double()[:, None, None] + bn.bias.double()[:, None, None]
        got = fold_batchnorm(conv, bn)(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels,bases,groups,hw,batch", [(32, 32, 2, 8, 11), (16, 8, 1, 5, 3), (64, 16, 4, 4, 2)])
def test_fused_csa_matches_the_csa_definition_in_float64(channels, bases, groups, hw, batch, channels_last):
    torch.manual_seed(1)
    block = randomise(CompressedSelfAttention(channels, num_bases=bases, groups=groups))
    x = torch.randn(batch, channels, hw, hw + 1)
    expected = csa_reference(block, x)
    if channels_last:  # the CPU path: (B, N, C) rows, images in chunks of 8, channels-last output
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fused = FusedCSA(block)(x)
        eager = block(x)
    assert fused.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(fused.double(), expected, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(eager.double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_csa_in_place_adds_to_its_input(channels_last):
    """``inplace=True`` (what fuse_for_inference uses inside an L2Net) gives the same output, in the input's memory."""
    torch.manual_seed(3)
    block = randomise(CompressedSelfAttention(32, num_bases=8, groups=2))
    x = torch.randn(10, 32, 6, 5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = FusedCSA(block)(x)
    assert not torch.equal(expected, x)  # the block changes the map, so the check below can fail
    got = FusedCSA(block, inplace=True)(x)
    assert got.data_ptr() == x.data_ptr()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    fused = fuse_for_inference(create_model("hardnet-csa"))
    assert fused.attn32.inplace and not FusedCSA(block).inplace


@needs_ort
@pytest.mark.parametrize("channels,bases,groups,hw,batch", [(32, 32, 2, 8, 3), (64, 16, 4, 4, 2)])
def test_fused_csa_onnx_graph_matches_the_csa_definition(channels, bases, groups, hw, batch):
    """The exported graph takes FusedCSA's ``Exp`` branch (torch runs ``exp2``): both match float64."""
    import io

    import onnxruntime as ort

    onnx = pytest.importorskip("onnx")
    torch.manual_seed(2)
    block = randomise(CompressedSelfAttention(channels, num_bases=bases, groups=groups))
    x = torch.randn(batch, channels, hw, hw + 1)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes
        torch.onnx.export(FusedCSA(block).eval(), (x[:1],), buffer, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False, dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    assert "Exp" in {node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node}
    got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    torch.testing.assert_close(got.double(), csa_reference(block, x), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("temperature", [14.0, 60.0])  # one exponential / the two softmaxes as written
def test_csa_block_forward_and_gradients_match_float64(temperature):
    torch.manual_seed(6)
    block = randomise(CompressedSelfAttention(16, num_bases=8, groups=2, temperature=temperature))
    x = torch.randn(2, 16, 6, 5, requires_grad=True)
    weight = torch.randn(2, 16, 6, 5)

    def grads(fn):
        block.zero_grad(set_to_none=True)
        x.grad = None
        out = fn()
        (out * weight).sum().backward()
        return out.detach().double(), [t.grad.double() for t in (x, block.bases, block.query.weight,
                                                                   block.value.weight, block.out.bias, block.gamma)]

    expected, expected_grads = grads(lambda: csa_reference(block, x))
    got, got_grads = grads(lambda: block(x))
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_fused_csa_extreme_logits_stay_finite():
    """Features aligned with or opposite to every base: logits at +-s, where exp(e) is largest/smallest."""
    block = CompressedSelfAttention(8, num_bases=4, groups=1, temperature=40.0)
    with torch.no_grad():
        block.gamma.fill_(1.0)
        block.bases.copy_(torch.tensor([[1.0, 0.0]]).repeat(4, 1))
        block.query.weight.zero_()
        block.query.bias.copy_(torch.tensor([1.0, 0.0]))
        x = torch.randn(2, 8, 4, 4)
        expected = csa_reference(block, x)
        for t in (x, x.contiguous(memory_format=torch.channels_last)):
            assert torch.isfinite(FusedCSA(block)(t)).all()
            torch.testing.assert_close(FusedCSA(block)(t).double(), expected, atol=1e-4, rtol=1e-5)
        block.query.bias.copy_(torch.tensor([-1.0, 0.0]))
        expected = csa_reference(block, x)
        for t in (x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(FusedCSA(block)(t).double(), expected, atol=1e-4, rtol=1e-5)


def test_high_temperature_csa_is_kept_unfused():
    model = randomise(create_model("hardnet-csa", temperature=60.0)).eval()
    fused = fuse_for_inference(model)
    assert isinstance(fused.attn32, CompressedSelfAttention)
    with pytest.raises(ValueError, match="temperature"):
        FusedCSA(model.attn32)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["hardnet", "hardnet-csa", "hardnet-sa", "kornia-hardnet", "sosnet"])
def test_fuse_for_inference_keeps_outputs_and_leaves_the_model_alone(name):
    torch.manual_seed(2)
    model = randomise(create_model(name)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert model.training and not fused.training
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in fused.modules())
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x)
        torch.testing.assert_close(fused(x), expected, atol=1e-5, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------------ describe_patches


def _brute_force(model: nn.Module, patches: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(as_patch_tensor(patches, model.patch_size))


@pytest.fixture(scope="module")
def csa_model():
    torch.manual_seed(3)
    return randomise(create_model("hardnet-csa"))


@pytest.fixture(scope="module")
def patches65():
    return np.random.default_rng(0).integers(0, 256, (37, 65, 65), dtype=np.uint8)


@pytest.mark.parametrize("backend", ["eager", "fused", pytest.param("onnxruntime", marks=needs_ort), "auto"])
def test_backends_agree_with_the_model(csa_model, patches65, backend):
    expected = _brute_force(csa_model, patches65)
    got = describe_patches(csa_model, patches65, batch_size=16, backend=backend)
    assert got.dtype == torch.float32 and got.shape == (37, 128)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert torch.allclose(got.norm(dim=1), torch.ones(37), atol=1e-5)


@needs_ort
def test_describer_reports_the_backend_and_its_batch_size(monkeypatch):
    monkeypatch.setattr(inference, "cpu_kind", lambda: "AVX512_BF16")  # "auto" is ONNX Runtime there
    torch.manual_seed(4)
    hardnet, csa = create_model("hardnet"), create_model("hardnet-csa")
    assert PatchDescriber(hardnet).backend == "onnxruntime"
    assert PatchDescriber(hardnet).batch_size == 128
    assert PatchDescriber(csa).batch_size == 16
    assert PatchDescriber(csa, backend="fused").batch_size == 32
    assert PatchDescriber(csa, backend="fused").backend == "fused"


@pytest.mark.parametrize("kind, expected", [("AMX", "onnxruntime"), ("AVX512_BF16", "onnxruntime"),
                                            ("AVX512", "onnxruntime"), ("AVX2", "fused"), ("DEFAULT", "fused")])
def test_auto_backend_follows_the_cpu(monkeypatch, kind, expected):
    """ONNX Runtime where it was measured fastest (AVX-512); PyTorch on AVX2-only CPUs, on GPUs, in bfloat16,
    for small jobs and without ONNX Runtime."""
    monkeypatch.setattr(inference, "cpu_kind", lambda: kind)
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: True)
    assert inference.auto_backend("cpu") == expected
    assert inference.auto_backend("cpu", "float32", inference.ONNX_MIN_PATCHES) == expected
    assert inference.auto_backend("cpu", "float32", inference.ONNX_MIN_PATCHES - 1) == "fused"
    assert inference.auto_backend("cpu", "bfloat16") == "fused"
    assert inference.auto_backend("cuda") == "fused"
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: False)
    assert inference.auto_backend("cpu") == "fused"


def test_batch_size_and_a_given_describer_do_not_change_results(csa_model, patches65):
    a = describe_patches(csa_model, patches65, batch_size=5, backend="fused")
    b = describe_patches(csa_model, patches65, backend="fused")
    describer = PatchDescriber(csa_model, backend="fused")
    c = describe_patches(describer, torch.from_numpy(patches65), batch_size=100)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(c, b, atol=1e-6, rtol=0)


def test_model_is_not_changed_and_new_weights_are_seen():
    torch.manual_seed(5)
    model = randomise(create_model("hardnet")).train()
    patches = np.random.default_rng(1).integers(0, 256, (12, 32, 32), dtype=np.uint8)
    first = describe_patches(model, patches, backend="fused")
    assert model.training, "describe_patches must not leave the model in eval mode"
    with torch.no_grad():  # an optimiser step: in-place update
        model.features[3].weight.mul_(-1.5)
    second = describe_patches(model, patches, backend="fused")
    torch.testing.assert_close(second, _brute_force(model, patches), atol=1e-5, rtol=0)
    assert (first - second).abs().max() > 1e-3


def test_float_input_and_empty_input():
    model = create_model("pixels")
    x = torch.rand(5, 1, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(describe_patches(model, x), model(x.float()), atol=1e-6, rtol=0)
    empty = describe_patches(create_model("hardnet"), np.zeros((0, 32, 32), np.uint8))
    assert empty.shape == (0, 128)


def test_fallback_to_fused_with_a_warning_when_a_backend_cannot_run():
    model = create_model("pixels")  # no parameters: not exported to ONNX
    patches = np.random.default_rng(2).integers(0, 256, (4, 32, 32), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="using 'fused'"):
        describer = PatchDescriber(model, backend="onnxruntime")
    assert describer.backend == "fused"
    torch.testing.assert_close(describe_patches(describer, patches), _brute_force(model, patches))


def test_bfloat16_is_close_to_float32(csa_model, patches65):
    full = describe_patches(csa_model, patches65[:8], backend="fused")
    half = describe_patches(csa_model, patches65[:8], backend="fused", precision="bfloat16")
    assert half.dtype == torch.float32
    assert (half - full).abs().max() < 0.05
    assert (half - full).abs().max() > 0  # it really ran in bfloat16


@pytest.mark.parametrize("kwargs,error", [({"backend": "tensorrt"}, ValueError), ({"batch_size": 0}, ValueError),
                                          ({"precision": "float16"}, ValueError)])
def test_bad_arguments_raise_clear_errors(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        describe_patches(create_model("pixels"), np.zeros((2, 32, 32), np.uint8), **kwargs)


def test_bad_patches_raise_clear_errors():
    model = create_model("pixels")
    with pytest.raises(ValueError, match="H == W"):
        describe_patches(model, np.zeros((2, 32, 31), np.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        describe_patches(model, np.zeros((2, 32, 32), np.int32))


@needs_ort
def test_onnxruntime_describes_batches_in_parallel_in_order(csa_model, patches65):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        describer = PatchDescriber(csa_model, backend="onnxruntime")
    finally:
        torch.set_num_threads(threads)
    assert describer.backend == "onnxruntime" and describer.workers == 2
    x = as_patch_tensor(patches65, 32)
    one_by_one = torch.cat([describer(x[i:i + 4]) for i in range(0, len(x), 4)])
    parallel = describe_patches(describer, patches65, batch_size=4)
    assert torch.equal(parallel, one_by_one)  # same batches, same order: bit-identical
    torch.testing.assert_close(parallel, _brute_force(csa_model, patches65), atol=1e-5, rtol=0)
    assert PatchDescriber(csa_model, backend="fused").workers == 1


@needs_ort
def test_auto_falls_back_without_a_warning_for_a_model_onnx_cannot_take(monkeypatch, recwarn):
    """``auto`` on a CPU where it means ONNX Runtime: a model without parameters silently runs on PyTorch;
    the same backend asked for by name warns."""
    monkeypatch.setattr(inference, "cpu_kind", lambda: "AVX512_BF16")
    patches = np.random.default_rng(0).integers(0, 256, (inference.ONNX_MIN_PATCHES, 32, 32), dtype=np.uint8)
    pixels = create_model("pixels")
    describe_patches(pixels, patches)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.warns(RuntimeWarning, match="backend 'onnxruntime' is not available"):
        describe_patches(pixels, patches[:8], backend="onnxruntime")
