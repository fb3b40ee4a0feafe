"""CSA and the non-local block against float64 references written from the formulas of docs/csa.md."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from descnet.models import CompressedSelfAttention, NonLocalAttention


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _conv1x1(conv: torch.nn.Conv2d, x: np.ndarray) -> np.ndarray:
    """x: (C, N) float64 -> (C', N)."""
    w = conv.weight.detach().double().numpy()[:, :, 0, 0]
    return w @ x + conv.bias.detach().double().numpy()[:, None]


def csa_reference(block: CompressedSelfAttention, x: torch.Tensor) -> np.ndarray:
    """Per image, straight from the definition: q, w, e, A, W, v, o, y, z, out."""
    c, g, m, s = block.channels, block.groups, block.num_bases, block.temperature
    outs = []
    for img in x.detach().double().numpy():
        h, w_ = img.shape[1:]
        xn = img.reshape(c, h * w_)
        q = _conv1x1(block.query, xn)
        q = q / np.linalg.norm(q, axis=0, keepdims=True)
        bases = block.bases.detach().double().numpy()
        bases = bases / np.linalg.norm(bases, axis=1, keepdims=True)
        e = np.zeros((g, m, h * w_))
        for gi in range(g):
            for mi in range(m):
                e[gi, mi] = s * bases[gi * m + mi] @ q
        a = _softmax(e, axis=2)  # over positions
        wts = _softmax(e, axis=1)  # over bases
        v = _conv1x1(block.value, xn)
        y = np.zeros_like(v)
        cg = c // g
        for gi in range(g):
            vg = v[gi * cg:(gi + 1) * cg]
            o = np.stack([(a[gi, mi][None, :] * vg).sum(1) for mi in range(m)], axis=1)  # (C/G, M)
            for n in range(h * w_):
                y[gi * cg:(gi + 1) * cg, n] = (o * wts[gi, :, n][None, :]).sum(1)
        z = _conv1x1(block.out, y)
        outs.append((xn + block.gamma.item() * z).reshape(c, h, w_))
    return np.stack(outs)


@pytest.mark.parametrize("c,h,w,m,g", [(32, 6, 5, 8, 2), (16, 4, 4, 4, 1), (64, 3, 7, 16, 4), (8, 5, 5, 32, 2)])
def test_csa_matches_float64_reference(c, h, w, m, g):
    torch.manual_seed(c + m + g)
    block = CompressedSelfAttention(c, num_bases=m, groups=g, temperature=14.0)
    with torch.no_grad():
        block.gamma.fill_(0.7)
        for conv in (block.query, block.value, block.out):
            conv.bias.normal_()
    x = torch.randn(2, c, h, w)
    out = block(x).detach().double().numpy()
    np.testing.assert_allclose(out, csa_reference(block, x), rtol=1e-4, atol=1e-4)
    # the float64 module agrees to round-off
    out64 = block.double()(x.double()).detach().numpy()
    np.testing.assert_allclose(out64, csa_reference(block, x), rtol=1e-10, atol=1e-10)


def test_csa_implied_attention_is_row_stochastic_with_rank_at_most_m():
    torch.manual_seed(1)
    c, h, w, m, g = 16, 8, 8, 6, 2
    block = CompressedSelfAttention(c, num_bases=m, groups=g).double()
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    e = block.logits(x)[0]  # (G, M, N)
    a, wts = torch.softmax(e, dim=2), torch.softmax(e, dim=1)
    v = block.value(x).reshape(g, c // g, h * w)
    y = block.attend(x).reshape(g, c // g, h * w)
    for gi in range(g):
        implied = wts[gi].T @ a[gi]  # (N, N): position n attends with weights sum_m W[m,n] A[m,:]
        assert implied.shape == (h * w, h * w)
        torch.testing.assert_close(implied.sum(1), torch.ones(h * w, dtype=torch.float64))
        assert bool((implied >= 0).all())
        assert torch.linalg.matrix_rank(implied).item() <= m
        # the block's output is exactly the values pooled by that implied attention
        torch.testing.assert_close(y[gi], v[gi] @ implied.T)


def test_csa_with_gamma_zero_is_identity_and_gradients_reach_bases_and_gamma():
    torch.manual_seed(2)
    block = CompressedSelfAttention(32, num_bases=8, groups=2)
    x = torch.randn(3, 32, 8, 8, requires_grad=True)
    out = block(x)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    out.square().sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs().item() > 0
    # with gamma = 0 the bases get no gradient; once gamma moves they do
    with torch.no_grad():
        block.gamma.fill_(0.5)
    block.zero_grad()
    block(x).square().sum().backward()
    assert block.bases.grad is not None and block.bases.grad.abs().sum().item() > 0
    assert block.query.weight.grad.abs().sum().item() > 0


def test_csa_rejects_bad_input():
    block = CompressedSelfAttention(32)
    with pytest.raises(ValueError, match=r"\(B, 32, H, W\)"):
        block(torch.randn(2, 16, 8, 8))
    with pytest.raises(ValueError):
        block(torch.randn(32, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        block(torch.zeros(1, 32, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        CompressedSelfAttention(32, groups=3)


def nonlocal_reference(block: NonLocalAttention, x: torch.Tensor) -> np.ndarray:
    outs = []
    for img in x.detach().double().numpy():
        c, h, w = img.shape
        xn = img.reshape(c, h * w)
        q, k, v = _conv1x1(block.query, xn), _conv1x1(block.key, xn), _conv1x1(block.value, xn)
        att = _softmax(q.T @ k, axis=1)  # (N, N), row n over keys
        y = v @ att.T
        outs.append((xn + block.gamma.item() * _conv1x1(block.out, y)).reshape(c, h, w))
    return np.stack(outs)


@pytest.mark.parametrize("c,h,w", [(32, 5, 6), (16, 4, 4), (64, 3, 3)])
def test_nonlocal_matches_float64_reference(c, h, w):
    torch.manual_seed(c)
    block = NonLocalAttention(c)
    with torch.no_grad():
        block.gamma.fill_(-0.4)
    x = torch.randn(2, c, h, w)
    np.testing.assert_allclose(block(x).detach().numpy(), nonlocal_reference(block, x), rtol=1e-4, atol=1e-4)
    att = block.attention(x)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, h * w))


@pytest.mark.parametrize("block_type", ["csa", "nonlocal"])
def test_cpu_chunking_gives_the_same_outputs_and_gradients(block_type):
    """Batches larger than ``cpu_chunk`` go through in chunks; results and gradients must not change."""
    torch.manual_seed(3)
    block = CompressedSelfAttention(16, num_bases=4, groups=2) if block_type == "csa" else NonLocalAttention(16)
    with torch.no_grad():
        block.gamma.fill_(0.6)
    x = torch.randn(7, 16, 5, 4)
    results = []
    for chunk in (2, 100):  # 4 chunks (the last one short) / one piece
        block.cpu_chunk = chunk
        block.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = block(xi)
        out.square().sum().backward()
        results.append((out.detach(), xi.grad, [p.grad.clone() for p in block.parameters()]))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_a, gx_b, rtol=1e-5, atol=1e-6)
    for a, b in zip(gp_a, gp_b):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if block_type == "csa":
        np.testing.assert_allclose(out_a.double().numpy(), csa_reference(block, x), rtol=1e-4, atol=1e-4)
