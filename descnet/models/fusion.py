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
from .l2net import L2Net

__all__ = ["fuse_for_inference", "fold_batchnorm", "FusedCSA"]

_LOG2_E = 1.4426950408889634  # log2(e)



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

    ``(B, C, H, W) -> (B, C, H, W)``. Built from a trained block (its weights are copied and folded). With
    ``X`` the ``(C, N)`` map of one image, ``E = exp(e)`` its ``(G*M, N)`` exponentiated cosine logits and
    ``E_g`` the M rows of group g:

    * the logits are at most ``s`` in magnitude, so one ``E`` serves both softmaxes without the
      max-subtraction passes: ``A_g = E_g / sum_n E_g`` (over positions) and ``W_g = E_g / sum_m E_g``
      (over the group's bases);
    * queries and values are one projection ``[q; v] = W_qv X + b_qv``; the pooled values are
      ``o_g = v_g A_g^T`` (``(C/G, M)``, the division applied to the small product, not to ``E``);
    * the output projection and ``gamma`` are applied to the M pooled columns, not to the N positions:
      ``P_g = gamma Wo_g o_g + gamma bo / G`` (``(C, M)``; the bias term works because every column of
      ``W_g`` sums to 1), and the output is ``X + [P_1 ... P_G] [W_1; ...; W_G]``: one matrix product with
      ``K = G*M`` for all groups, with the residual as its addend (the channels-last CPU path adds the G
      products of ``K = M`` in place instead: ATen copies strided outputs);
    * PyTorch computes ``E`` as ``exp2`` of logits scaled by ``log2(e)`` (folded into the bases): ATen's
      ``exp2`` is ~4x faster than its ``exp`` (both vectorised; ``exp2`` within ~1e-6 relative). The ONNX
      export keeps ``Exp`` (ONNX has no ``Exp2``; ONNX Runtime's ``Exp`` is fast).

    Multiply-adds per image: ``N*C*(Cq + C)`` (projection) ``+ N*Cq*G*M`` (logits) ``+ N*C*M`` (pooling)
    ``+ N*C*G*M`` (output).

    Only for temperatures up to 40 (``exp(40)`` summed over a million positions is still finite in float32
    and bfloat16); :func:`fuse_for_inference` keeps the original block otherwise.
    """

    MAX_TEMPERATURE = SINGLE_EXP_MAX_TEMPERATURE

    def __init__(self, block: nn.Module, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace  # add the attention to the input's memory (like nn.ReLU(inplace=True))
        c, g, m = block.channels, block.groups, block.num_bases
        if block.temperature > self.MAX_TEMPERATURE:
            raise ValueError(f"FusedCSA needs temperature <= {self.MAX_TEMPERATURE}, got {block.temperature}")
        self.channels, self.groups, self.num_bases = c, g, m
        cg = c // g
        with torch.no_grad():
            wq = block.query.weight.detach().flatten(1).double()  # (Cq, C)
            bq = block.query.bias.detach().double()
            wv = block.value.weight.detach().flatten(1).double()  # (C, C)
            bv = block.value.bias.detach().double()
            gamma = block.gamma.detach().double()
            wo = gamma * block.out.weight.detach().flatten(1).double().view(c, g, cg).transpose(0, 1)  # (G, C, C/G)
            bo = gamma * block.out.bias.detach().double()
            bases = F.normalize(block.bases.detach().double(), dim=1) * block.temperature  # s * w: (G*M, Cq)
        dtype = block.query.weight.dtype
        self.query_channels = wq.shape[0]
        # [q; v] = W_qv x + b_qv: (Cq + C, C), one projection for the queries and the values
        self.register_buffer("qv_weight", torch.cat([wq, wv]).to(dtype))
        self.register_buffer("qv_bias", torch.cat([bq, bv]).view(1, -1, 1).to(dtype))
        self.register_buffer("bases", bases.to(dtype))  # (G*M, Cq), for ONNX's Exp
        # exp(e) = exp2(e log2(e)): torch's exp2 is ~4x faster than its exp, so log2(e) goes into the bases
        self.register_buffer("bases_log2", (bases * _LOG2_E).to(dtype))
        self.register_buffer("out_weight", wo.to(dtype))  # gamma Wo_g: (G, C, C/G)
        # gamma bo / G, added to every pooled column of every group: the weights over the M bases of a
        # group sum to 1 at every position, so the G groups add up gamma bo
        self.register_buffer("out_bias", (bo / g).to(dtype))  # (C,)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_bases={self.num_bases}, groups={self.groups}"
                + (", inplace=True" if self.inplace else ""))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self._forward_channels_last(x)
        b, c, h, w = x.shape
        g, m, n, cq, cg = self.groups, self.num_bases, h * w, self.query_channels, self.channels // self.groups
        flat = x.reshape(b, c, n)  # X: (B, C, N)
        qv = torch.baddbmm(self.qv_bias, self.qv_weight.expand(b, -1, -1), flat)  # [q; v]: (B, Cq + C, N)
        q = F.normalize(qv[:, :cq].contiguous(), dim=1)  # (B, Cq, N); ATen's norm over a strided slice is slow
        if torch.onnx.is_in_onnx_export():  # ONNX has no Exp2 (and ONNX Runtime's Exp is fast)
            e = torch.matmul(self.bases, q).exp()  # E: (B, G*M, N)
        else:
            e = torch.matmul(self.bases_log2, q).exp2_()
        e = e.view(b, g, m, n)
        v = qv[:, cq:].reshape(b, g, cg, n)  # (B, G, C/G, N)
        o = torch.matmul(v, e.transpose(2, 3)) / e.sum(3).unsqueeze(2)  # o = v A^T: (B, G, C/G, M)
        p = torch.matmul(self.out_weight, o) + self.out_bias.view(c, 1)  # P_g = gamma Wo_g o_g + ...: (B, G, C, M)
        weights = (e / e.sum(2, keepdim=True)).view(b, g * m, n)  # W: (B, G*M, N)
        out = flat if self.inplace else flat.clone()
        return out.baddbmm_(p.transpose(1, 2).reshape(b, c, g * m), weights).view(b, c, h, w)

    def _forward_channels_last(self, x: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """The same computation on the ``(B, N, C)`` rows of a channels-last map; channels-last output.

        Images are processed ``chunk`` at a time so the ``(N, G*M)`` maps stay in cache.
        """
        b, c, h, w = x.shape
        g, m, n, cq, cg = self.groups, self.num_bases, h * w, self.query_channels, self.channels // self.groups
        rows = x.permute(0, 2, 3, 1).reshape(b, n, c)  # a view of channels-last memory
        out = rows if self.inplace else torch.empty_like(rows)
        for i in range(0, b, chunk):
            r = rows[i:i + chunk]  # X^T: (k, N, C)
            k = len(r)
            qv = torch.addmm(self.qv_bias.view(-1), r.reshape(k * n, c), self.qv_weight.t())  # [q, v]: (k*N, Cq + C)
            q = F.normalize(qv[:, :cq], dim=1)
            e = torch.mm(q, self.bases_log2.t()).exp2_().view(k, n, g * m)  # E^T: (k, N, G*M)
            inv_colsum = e.sum(1).reciprocal_()  # 1 / sum_n E: (k, G*M)
            pooled = []  # P_g^T per group: (k, M, C)
            for j in range(g):
                bases = slice(j * m, (j + 1) * m)
                v = qv[:, cq + j * cg:cq + (j + 1) * cg].view(k, n, cg)  # v_g^T: (k, N, C/G)
                o = torch.bmm(e[:, :, bases].transpose(1, 2), v)  # (k, M, C/G), contiguous (no copy)
                o.mul_(inv_colsum[:, bases].unsqueeze(2))  # o_g^T = A_g v_g: the softmax over positions
                pooled.append(torch.addmm(self.out_bias, o.view(k * m, cg), self.out_weight[j].t()).view(k, m, c))
            groups = e.view(k, n, g, m)
            groups.mul_(groups.sum(3, keepdim=True).reciprocal_())  # W^T: the softmax over each group's bases
            # out = X^T + sum_g W_g^T P_g^T: one K=M product per group, accumulated in place (per-group
            # products into one (k, G*M, C) buffer would need strided outputs, which ATen copies)
            target = out[i:i + k]  # in place: rows i..i+k, already read (qv) before they are written
            if not self.inplace:
                target.copy_(r)
            for j in range(g):
                target.baddbmm_(e[:, :, j * m:(j + 1) * m], pooled[j])
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
    BatchNorm becomes ``nn.Identity``, so layer indices are kept), dropout is removed and ReLUs work in place.
    Every :class:`~descnet.models.CompressedSelfAttention` becomes a :class:`FusedCSA`, in place inside an
    :class:`~descnet.models.L2Net` (its input is an activation nothing else reads). The model's own
    ``forward`` is unchanged, so input checks and the output contract stay.
    """
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
        for name, child in list(module.named_children()):
            if isinstance(child, CompressedSelfAttention) and child.temperature <= FusedCSA.MAX_TEMPERATURE:
                # in place inside an L2Net, whose forward hands the block a fresh activation used nowhere else
                setattr(module, name, FusedCSA(child, inplace=isinstance(module, L2Net)))
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
