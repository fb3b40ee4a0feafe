"""Inference forms of a trained model: BatchNorm folded into convolutions, dropout removed, CSA blocks fused.

:func:`fuse_for_inference` gives an eval-mode copy with the same outputs (to float rounding) that
:mod:`descnet.features.inference` describes with and :mod:`descnet.models.export` exports.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SINGLE_EXP_MAX_TEMPERATURE, CompressedSelfAttention

__all__ = ["fuse_for_inference", "fold_batchnorm", "FusedCSA"]



def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` for a BatchNorm in eval mode (running statistics).

    ``w' = w * g / sqrt(var + eps)`` per output channel and ``b' = (b - mean) * g / sqrt(var + eps) + beta``,
    with ``g = 1, beta = 0`` for ``affine=False``: exact up to float rounding.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm needs a BatchNorm with running statistics")
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * scale
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    if bn.affine:
        shift = shift * bn.weight.double() + bn.bias.double()
        scale = scale * bn.weight.double()
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    with torch.no_grad():
        shape = (-1,) + (1,) * (conv.weight.ndim - 1)
        fused.weight.copy_((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
        fused.bias.copy_(shift.to(conv.weight.dtype))
    return fused.to(conv.weight.device)


class FusedCSA(nn.Module):
    r"""Inference form of :class:`~descnet.models.CompressedSelfAttention`: same output, fewer passes.

    ``(B, C, H, W) -> (B, C, H, W)``. Built from a trained block (its weights are copied and folded):

    * the cosine logits are at most ``s`` in magnitude, so one ``E = exp(e)`` serves both softmaxes
      (``A = E / sum_n E``, ``W = E / sum_m E``) without the max-subtraction passes;
    * the row sums come out of the two batched matmuls: the value projection gets one extra output row of
      ones per group (weights 0, bias 1), so ``[v; 1] E^T = [sum_n v E; sum_n E]``, and ``[o; 1] E =
      [sum_m o E; sum_m E]``; dividing by the last row gives ``[o; 1]`` and ``[y; 1]``;
    * the output projection, ``gamma`` and the residual are one ``baddbmm`` whose extra columns (fed by the
      ones rows) add ``gamma * bias``.

    Only for temperatures up to 40 (``exp(40)`` summed over a million positions is still finite in float32
    and bfloat16); :func:`fuse_for_inference` keeps the original block otherwise.
    """

    MAX_TEMPERATURE = SINGLE_EXP_MAX_TEMPERATURE

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        c, g, m = block.channels, block.groups, block.num_bases
        if block.temperature > self.MAX_TEMPERATURE:
            raise ValueError(f"FusedCSA needs temperature <= {self.MAX_TEMPERATURE}, got {block.temperature}")
        self.channels, self.groups, self.num_bases = c, g, m
        cg = c // g
        with torch.no_grad():
            wq = block.query.weight.detach().flatten(1).double()  # (Cq, C)
            wv = block.value.weight.detach().flatten(1).double()  # (C, C)
            bv = block.value.bias.detach().double()
            wo = block.out.weight.detach().flatten(1).double()  # (C, C)
            gamma = block.gamma.detach().double()
            # value rows per group: [v_g (C/G); ones (1)]
            wv_aug = torch.zeros(g, cg + 1, c, dtype=torch.float64)
            bv_aug = torch.ones(g, cg + 1, dtype=torch.float64)
            wv_aug[:, :cg] = wv.view(g, cg, c)
            bv_aug[:, :cg] = bv.view(g, cg)
            # output columns per group: [gamma * Wo[:, g] (C/G); gamma * bo / G (1)]
            wo_aug = torch.empty(c, g, cg + 1, dtype=torch.float64)
            wo_aug[:, :, :cg] = gamma * wo.view(c, g, cg)
            wo_aug[:, :, cg] = gamma * block.out.bias.detach().double().view(c, 1) / g
            bases = F.normalize(block.bases.detach().double(), dim=1) * block.temperature  # (G*M, Cq)
            bq = block.query.bias.detach().double()
            # channels-last form: one projection of the (B*N, C) rows to [s*w.(Wq x + bq) | Wq x + bq | [v; 1]]
            proj = torch.cat([bases @ wq, wq, wv_aug.view(-1, c)])  # (G*M + Cq + G*(C/G+1), C)
            proj_bias = torch.cat([bases @ bq, bq, bv_aug.view(-1)])
        dtype = block.query.weight.dtype
        self.query_channels = wq.shape[0]
        self.register_buffer("proj_weight_t", proj.t().contiguous().to(dtype))
        self.register_buffer("proj_bias", proj_bias.to(dtype))
        self.register_buffer("out_weight_t", wo_aug.permute(1, 2, 0).contiguous().to(dtype))  # (G, C/G+1, C)
        self.register_buffer("query_weight", wq.to(dtype))
        self.register_buffer("query_bias", block.query.bias.detach().view(1, -1, 1).clone())
        self.register_buffer("value_weight", wv_aug.view(g * (cg + 1), c).to(dtype))
        self.register_buffer("value_bias", bv_aug.view(1, -1, 1).to(dtype))
        self.register_buffer("out_weight", wo_aug.view(c, g * (cg + 1)).to(dtype))
        self.register_buffer("bases", bases.to(dtype))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_bases={self.num_bases}, groups={self.groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self._forward_channels_last(x)
        b, c, h, w = x.shape
        g, m, n = self.groups, self.num_bases, h * w
        flat = x.reshape(b, c, n)  # (B, C, N)
        q = F.normalize(torch.baddbmm(self.query_bias, self.query_weight.expand(b, -1, -1), flat), dim=1)  # (B, Cq, N)
        e = torch.bmm(self.bases.expand(b, -1, -1), q).exp_().view(b * g, m, n)  # E: (B*G, M, N)
        v = torch.baddbmm(self.value_bias, self.value_weight.expand(b, -1, -1), flat).view(b * g, -1, n)  # [v; 1]
        o = torch.bmm(v, e.transpose(1, 2))  # (B*G, C/G+1, M)
        o = o / o[:, -1:]  # [o; 1]
        y = torch.bmm(o, e)  # (B*G, C/G+1, N)
        y = (y / y[:, -1:]).view(b, -1, n)  # [y; 1] per group
        return torch.baddbmm(flat, self.out_weight.expand(b, -1, -1), y).view(b, c, h, w)

    def _forward_channels_last(self, x: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """The same computation on the ``(B, N, C)`` rows of a channels-last map; channels-last output.

        Images are processed ``chunk`` at a time so the ``(N, G*M)`` maps stay in cache.
        """
        b, c, h, w = x.shape
        g, m, n, cq, cg = self.groups, self.num_bases, h * w, self.query_channels, self.channels // self.groups
        rows = x.permute(0, 2, 3, 1).reshape(b, n, c)  # a view of channels-last memory
        out = torch.empty_like(rows)
        for i in range(0, b, chunk):
            r = rows[i:i + chunk]
            k = len(r)
            p = torch.addmm(self.proj_bias, r.reshape(k * n, c), self.proj_weight_t).view(k, n, -1)
            inv_norm = p[:, :, g * m:g * m + cq].square().sum(2, keepdim=True).clamp_min_(1e-24).rsqrt_()
            e = torch.mul(p[:, :, :g * m], inv_norm).exp_()  # E^T: (k, N, G*M)
            for j in range(g):
                eg = e[:, :, j * m:(j + 1) * m]  # (k, N, M)
                start = g * m + cq + j * (cg + 1)
                v = p[:, :, start:start + cg + 1]  # [v, 1]: (k, N, C/G+1)
                o = torch.bmm(v.transpose(1, 2), eg)  # (k, C/G+1, M)
                o = o / o[:, -1:]  # [o; 1]
                y = torch.bmm(eg, o.transpose(1, 2))  # (k, N, C/G+1)
                y = y / y[:, :, -1:]  # [y, 1]
                weight = self.out_weight_t[j].expand(k, -1, -1)
                if j == 0:
                    torch.baddbmm(r, y, weight, out=out[i:i + k])
                else:
                    out[i:i + k].baddbmm_(y, weight)
        return out.view(b, h, w, c).permute(0, 3, 1, 2)


def _fuse_sequential(seq: nn.Sequential) -> None:
    """Fold every Conv2d -> BatchNorm2d pair of ``seq`` in place, drop Dropout, make ReLU in-place."""
    mods = list(seq._modules.items())
    for i, (name, mod) in enumerate(mods):
        if isinstance(mod, nn.BatchNorm2d) and i > 0 and type(mods[i - 1][1]) is nn.Conv2d:
            seq._modules[mods[i - 1][0]] = fold_batchnorm(mods[i - 1][1], mod)
            seq._modules[name] = nn.Identity()
        elif isinstance(mod, (nn.Dropout, nn.Dropout2d)):
            seq._modules[name] = nn.Identity()
        elif type(mod) is nn.ReLU:
            seq._modules[name] = nn.ReLU(inplace=True)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with the same outputs (to float rounding), made for inference.

    Inside every ``nn.Sequential``, a BatchNorm2d right after a Conv2d is folded into the conv (the
    BatchNorm becomes ``nn.Identity``, so layer indices are kept) and dropout is removed. Every
    :class:`~descnet.models.CompressedSelfAttention` becomes a :class:`FusedCSA`. The model's own
    ``forward`` is unchanged, so input checks and the output contract stay.
    """
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
        for name, child in list(module.named_children()):
            if isinstance(child, CompressedSelfAttention) and child.temperature <= FusedCSA.MAX_TEMPERATURE:
                setattr(module, name, FusedCSA(child))
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
