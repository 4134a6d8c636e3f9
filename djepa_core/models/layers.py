"""Transformer building blocks of the context encoder and the feature predictor.

Submodule names equal the reference's (`norm1`, `attn.qkv`, `attn.q_norm`, `mlp.fc1`, ...) so its
state dicts load unchanged. Norms are evaluated in float32 (also under bf16 autocast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from djepa_core.models.ragged import RaggedRows


class LayerNorm32(nn.LayerNorm):
    """LayerNorm (eps 1e-6 by default) computed in float32, returned in the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if (x.dtype == torch.float32 and (w is None or w.dtype == torch.float32)
                and not torch.is_autocast_enabled(x.device.type)):
            return F.layer_norm(x, self.normalized_shape, w, b, self.eps)  # the same op, without the casts
        w32 = w.float() if w is not None else None
        b32 = b.float() if b is not None else None
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = F.layer_norm(x.float(), self.normalized_shape, w32, b32, self.eps)
        return y.to(x.dtype)


class RMSNorm32(nn.Module):
    """QK-norm: x * (mean(x^2) + eps)^(-1/2) * g over the last dim, in float32; gain key `weight`."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:  # the same ops, without the casts
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention: qkv Linear (with bias), optional QK RMSNorm, SDPA, output Linear."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm: nn.Module = RMSNorm32(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = RMSNorm32(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attn_mask` (optional, bool, broadcast to [B, nh, N, N]; True = attend): e.g. key padding."""
        b, n, d = x.shape
        # (B, N, 3, nh, hs) -> (3, B, nh, N, hs): the 3D output is ordered q | k | v
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        drop = self.attn_drop if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)  # (B, nh, N, hs)
        y = y.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(y))

    def forward_at(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """`forward(x)` at the tokens `index` [B, Q] of each row only: [B, Q, D]. Keys and values come from every
        token; queries, the output projection (and what follows in the block) only from the asked ones."""
        b, n, d = x.shape
        nh, hs = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(b, n, 3, nh, hs)
        q = qkv[:, :, 0].gather(1, index[:, :, None, None].expand(-1, -1, nh, hs))  # (B, Q, nh, hs)
        q, k = self.q_norm(q.transpose(1, 2)), self.k_norm(qkv[:, :, 1].transpose(1, 2))
        y = F.scaled_dot_product_attention(q, k, qkv[:, :, 2].transpose(1, 2))  # (B, nh, Q, hs)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(b, index.shape[1], d)))

    def forward_packed(self, x: torch.Tensor, rows: RaggedRows) -> torch.Tensor:
        """Rows of different lengths, packed (see models/ragged.py): x [N, D] are the real tokens of `rows`'
        buckets in order. The linear layers and QK norms see only the N real tokens; attention runs per bucket,
        padded to the bucket's longest row with the pads masked out of the keys (no mask in an unpadded one)."""
        n, d = x.shape
        nh, hs = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(n, 3, nh, hs)
        if not (isinstance(self.q_norm, nn.Identity) and isinstance(self.k_norm, nn.Identity)):
            q, k, v = qkv.unbind(1)  # per-token norms: on the real tokens only
            if torch.is_grad_enabled():
                qkv = torch.stack([self.q_norm(q), self.k_norm(k), v], dim=1)
            else:  # inference: normalise in place (no copy of v)
                q.copy_(self.q_norm(q))
                k.copy_(self.k_norm(k))
        y = qkv.new_empty(n, d)  # the attention dtype (bf16 under autocast)
        for b in rows.buckets:
            part = qkv[b.start:b.stop]
            if b.slots is None:  # every row of the bucket is b.length long
                full = part.view(b.rows, b.length, 3, nh, hs)
            else:
                full = part.new_zeros(b.rows * b.length, 3, nh, hs).index_copy_(0, b.slots, part)
                full = full.view(b.rows, b.length, 3, nh, hs)
            q, k, v = full.permute(2, 0, 3, 1, 4).unbind(0)  # each (rows, nh, length, hs)
            mask = None if b.where is None else b.where[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)  # (rows, length, nh, hs)
            if b.slots is None:
                y[b.start:b.stop].view(b.rows, b.length, nh, hs).copy_(out)
            else:
                torch.index_select(out.reshape(-1, d), 0, b.slots, out=y[b.start:b.stop])
        return self.proj_drop(self.proj(y))


class Mlp(nn.Module):
    """Linear -> exact GELU -> dropout -> [LayerNorm] -> Linear -> dropout (timm's Mlp layout)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0,
                 norm: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.norm: nn.Module = LayerNorm32(hidden) if norm else nn.Identity()
        self.fc2 = nn.Linear(hidden, out if out is not None else dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # dropout is the identity: skip its calls
            return self.fc2(self.norm(self.act(self.fc1(x))))
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class Block(nn.Module):
    """Pre-norm ViT block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(dim)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = LayerNorm32(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))

    def forward_at(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """`forward(x)` at the tokens `index` [B, Q] of each row only (inference: no attention dropout): [B, Q, D]."""
        picked = x.gather(1, index[:, :, None].expand(-1, -1, x.shape[-1]))
        picked = picked + self.attn.forward_at(self.norm1(x), index)
        return picked + self.mlp(self.norm2(picked))

    def forward_packed(self, x: torch.Tensor, rows: RaggedRows) -> torch.Tensor:
        """`forward` on packed rows of different lengths (see Attention.forward_packed): x [N, D]."""
        x = x + self.attn.forward_packed(self.norm1(x), rows)
        return x + self.mlp(self.norm2(x))
