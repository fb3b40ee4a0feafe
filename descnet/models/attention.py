"""Attention blocks for the descriptor network.

* :class:`CompressedSelfAttention` -- grouped compressed self-attention (CSA, Chen et al., AAAI 2020),
  exactly as defined in ``docs/csa.md``: M learned base vectors per channel group give M base attention
  maps over the N = H*W positions; the values are pooled with each map and every position takes a
  softmax-weighted average of the M pooled outputs. The implied N x N attention (rank <= M) is never
  built, so time and memory are O(N * M) instead of O(N^2).
* :class:`NonLocalAttention` -- full N x N self-attention (SAGAN-style non-local block), the
  cost/accuracy reference.

Both end in a 1x1 output projection and a residual ``x + gamma * z`` with ``gamma`` a learned scalar
initialised to 0, so an untrained block is the identity and can be dropped into a pretrained body.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CompressedSelfAttention", "NonLocalAttention"]


def _pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as one matrix product: ``(B, C, H, W) -> (B, C_out, H*W)``.

    Same result as ``conv(x).flatten(2)``; faster on the CPU, where oneDNN reorders NCHW maps for 1x1 convs
    (and ``torch.matmul`` of a matrix with a batch would copy the batch).
    """
    weight = conv.weight.view(1, conv.out_channels, conv.in_channels).expand(x.shape[0], -1, -1)
    if conv.bias is None:
        return torch.bmm(weight, x.flatten(2))
    return torch.baddbmm(conv.bias.view(1, -1, 1), weight, x.flatten(2))


def _in_cpu_chunks(attend: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``attend(x)`` over the batch dimension; on the CPU ``chunk`` images at a time (same result).

    Large CPU tensors get fresh pages from the OS on every allocation and fall out of cache, so attention
    maps are cheaper in small pieces there; ``split`` + ``cat`` is one op each way for autograd.
    """
    if x.device.type != "cpu" or x.shape[0] <= chunk:
        return attend(x)
    return torch.cat([attend(part) for part in x.split(chunk)])


#: |logit| <= temperature; up to this temperature exp(logit) summed over a million positions is finite in
#: float32/bfloat16, so one exponential serves both softmaxes (here and in :class:`~descnet.models.fusion.FusedCSA`)
SINGLE_EXP_MAX_TEMPERATURE = 40.0


def _check_feature_map(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects a (B, {channels}, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating point tensor, got {x.dtype}")


class CompressedSelfAttention(nn.Module):
    r"""Grouped compressed self-attention with a zero-initialised residual.

    Args:
        channels: C, the channels of the feature map (divisible by ``groups``, at least 4).
        num_bases: M, base attention maps per group.
        groups: G, channel groups; each has its own M bases and pools its own C/G value channels.
        temperature: s, the scale of the cosine logits.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Cost per image (N = H*W): logits ``N * C/4 * G * M`` and aggregation ``2 * N * M * C`` multiply-adds;
    attention memory ``2 * G * M * N`` floats (the logits' two softmaxes).
    """

    #: on the CPU, :meth:`attend` takes the batch this many images at a time (same result, stays in cache)
    cpu_chunk: int = 16

    def __init__(self, channels: int, num_bases: int = 32, groups: int = 2, temperature: float = 14.0) -> None:
        super().__init__()
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {channels}")
        if groups < 1 or channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        if num_bases < 1:
            raise ValueError(f"num_bases must be >= 1, got {num_bases}")
        self.channels, self.num_bases, self.groups = channels, num_bases, groups
        self.temperature = float(temperature)
        query_channels = channels // 4
        self.query = nn.Conv2d(channels, query_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.out = nn.Conv2d(channels, channels, kernel_size=1)
        self.bases = nn.Parameter(torch.empty(groups * num_bases, query_channels))
        nn.init.orthogonal_(self.bases)
        self.gamma = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_bases={self.num_bases}, groups={self.groups}, "
                f"temperature={self.temperature}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine logits ``e``: ``(B, C, H, W) -> (B, G, M, N)``."""
        b, _, h, w = x.shape
        q = F.normalize(_pointwise(self.query, x), dim=1)  # (B, Cq, N)
        bases = F.normalize(self.bases, dim=1) * self.temperature  # s * w: (G*M, Cq)
        e = torch.bmm(bases.expand(b, -1, -1), q)  # (B, G*M, N)
        return e.view(b, self.groups, self.num_bases, h * w)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output ``y`` before the output projection: ``(B, C, H, W) -> (B, C, H, W)``.

        On the CPU, images go through in chunks of :attr:`cpu_chunk` so that the ``(G*M, N)`` maps stay small.
        """
        return _in_cpu_chunks(self._attend, x, self.cpu_chunk)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g, m, n = self.groups, self.num_bases, h * w
        e = self.logits(x).reshape(b * g, m, n)
        v = _pointwise(self.value, x).reshape(b * g, c // g, n)  # (B*G, C/G, N)
        if e.dtype != torch.float16 and self.temperature <= SINGLE_EXP_MAX_TEMPERATURE:
            # The same two softmaxes from one exponential: softmax is shift-invariant and |e| <= s, so
            # exp(e) needs no max subtraction. A = E / sum_n E, W = E / sum_m E, with E = exp(e).
            ex = torch.exp(e)  # (B*G, M, N)
            base_out = torch.bmm(v, ex.transpose(1, 2)) / ex.sum(2).unsqueeze(1)  # o = v A^T: (B*G, C/G, M)
            y = torch.bmm(base_out, ex) / ex.sum(1, keepdim=True)  # y = o W: (B*G, C/G, N)
        else:  # float16 (exp(14) overflows) or a large temperature: the softmaxes as written
            base_maps = torch.softmax(e, dim=2)  # A: distribution over positions, (B*G, M, N)
            weights = torch.softmax(e, dim=1)  # W: distribution over bases, (B*G, M, N)
            base_out = torch.bmm(v, base_maps.transpose(1, 2))  # o: (B*G, C/G, M)
            y = torch.bmm(base_out, weights)  # (B*G, C/G, N)
        return y.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x, self.channels, "CompressedSelfAttention")
        y = self.attend(x).flatten(2)  # (B, C, N)
        # x + gamma * (Wo y + bo) as one product with gamma folded into the small (C, C) weight: autograd
        # then keeps only y for the backward pass, not the projected map as well
        weight = (self.gamma * self.out.weight.view(self.channels, self.channels)).expand(x.shape[0], -1, -1)
        residual = x.flatten(2) + (self.gamma * self.out.bias).view(1, -1, 1)
        return torch.baddbmm(residual, weight, y).view_as(x)


class NonLocalAttention(nn.Module):
    r"""Full self-attention over all N = H*W positions (the reference CSA approximates).

    Query and key width ``max(C // 8, 1)``, value width C, logits without scaling (SAGAN), softmax over
    the keys, a 1x1 output projection and the residual ``x + gamma * z`` (gamma initialised to 0).

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``; builds a ``(B, N, N)`` attention map.
    """

    #: on the CPU, :meth:`attend` takes the batch this many images at a time, as for CSA
    cpu_chunk: int = 16

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels
        qk = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, qk, kernel_size=1)
        self.key = nn.Conv2d(channels, qk, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.out = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Row-stochastic attention map ``(B, C, H, W) -> (B, N, N)``; row n attends over all positions."""
        q = _pointwise(self.query, x)  # (B, Cqk, N)
        k = _pointwise(self.key, x)
        return torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``; on the CPU in chunks of :attr:`cpu_chunk` images, as CSA."""
        return _in_cpu_chunks(self._attend, x, self.cpu_chunk)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        v = _pointwise(self.value, x)  # (B, C, N)
        y = torch.bmm(v, self.attention(x).transpose(1, 2))  # (B, C, N)
        return y.view(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x, self.channels, "NonLocalAttention")
        return x + self.gamma * _pointwise(self.out, self.attend(x)).view_as(x)
