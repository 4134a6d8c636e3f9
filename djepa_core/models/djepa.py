"""The D-JEPA network: context encoder, feature predictor, denoising head and JEPA projection.

Shapes: B batch, L = prod(grid) tokens of C channels, buf buffer slots, D encoder width,
Dd predictor width. A mask is float 0/1 [B, L] with 1 = masked; every row masks as many tokens.
Parameter names and order equal the reference's state dict (see shared/fixtures/official).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from djepa_core.config import ModelConfig
from djepa_core.heads.head import DenoisingHead
from djepa_core.heads.mlp import DenoisingMLP
from djepa_core.models.layers import Block, LayerNorm32, Mlp
from djepa_core.models.masking import training_mask
from djepa_core.models.posembed import sincos_table
from djepa_core.models.ragged import MAX_BUCKETS, RaggedRows


@dataclass(frozen=True)
class Batch:
    tokens: torch.Tensor  # (B, L, C) in the model's token scale
    labels: torch.Tensor  # (B,) int64 class ids


@dataclass(frozen=True)
class LossOutput:
    total: torch.Tensor
    denoise: torch.Tensor
    jepa: torch.Tensor
    mask_ratio: float


class JEPAProjection(nn.Module):
    """p = fc2(LN(GELU(fc1(z)))), Dd -> 4 Dd -> D; keys `jepaloss.net.{fc1,norm,fc2}`."""

    def __init__(self, decoder_dim: int, encoder_dim: int, beta: float = 2.0) -> None:
        super().__init__()
        self.beta = beta
        self.net = Mlp(decoder_dim, 4 * decoder_dim, out=encoder_dim, norm=True)

    def forward(self, z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Smooth-L1 (beta) of the projection of z against the (detached) target, masked tokens only."""
        p = self.net(z)
        per_token = F.smooth_l1_loss(p.float(), target.detach().float(), reduction="none",
                                     beta=self.beta).mean(dim=-1)
        return (per_token * mask).sum() / mask.sum()


class DJEPA(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        length, d, dd = cfg.seq_len, cfg.encoder_dim, cfg.decoder_dim
        # parameters in the reference's state-dict order
        self.fake_latent = nn.Parameter(torch.zeros(1, d))  # null class for guidance
        self.buffer = nn.Parameter(torch.zeros(1, cfg.buffer_size, d))
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, length, d))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, length, dd))
        self.class_emb = nn.Embedding(cfg.num_classes, d)
        # context encoder
        self.z_proj = nn.Linear(cfg.token_dim, d)
        self.z_proj_ln = LayerNorm32(d)
        self.encoder_blocks = nn.ModuleList([
            Block(d, cfg.encoder_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.attn_dropout, cfg.proj_dropout)
            for _ in range(cfg.encoder_depth)
        ])
        self.encoder_norm = LayerNorm32(d)
        # feature predictor
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_blocks = nn.ModuleList([
            Block(dd, cfg.decoder_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.attn_dropout, cfg.proj_dropout)
            for _ in range(cfg.decoder_depth)
        ])
        self.decoder_norm = LayerNorm32(dd)
        self.diffloss = DenoisingHead(cfg)
        self.jepaloss: JEPAProjection | None = JEPAProjection(dd, d, cfg.jepa_beta) if cfg.jepa_weight > 0 else None
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """Reference init: N(0, 0.02) tokens/tables, Xavier-uniform linears, unit norms, head's own."""
        for p in (self.fake_latent, self.buffer, self.encoder_pos_embed_learned, self.mask_token,
                  self.decoder_pos_embed_learned, self.class_emb.weight):
            nn.init.normal_(p, std=0.02)
        if self.config.pos_init == "sincos":  # (still learned; see models/posembed.py)
            with torch.no_grad():
                for table in (self.encoder_pos_embed_learned, self.decoder_pos_embed_learned):
                    table.copy_(sincos_table(self.config.grid, table.shape[-1]).unsqueeze(0))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.diffloss.net.reset_parameters()

    @property
    def head(self) -> DenoisingMLP:
        """The denoising MLP f(x_t, t, z)."""
        return self.diffloss.net

    # ------------------------------------------------------------------ conditioning
    def class_vectors(self, labels: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """e = class_emb[labels] [B, D]; labels None gives the null class for `batch` rows."""
        if labels is None:
            if batch is None:
                raise ValueError("need a batch size for null-class vectors")
            return self.fake_latent.expand(batch, -1)
        if labels.min() < 0 or labels.max() >= self.config.num_classes:
            raise ValueError(f"class ids must be in [0, {self.config.num_classes}), got {labels.tolist()}")
        return self.class_emb(labels)

    def null_vectors(self, batch: int) -> torch.Tensor:
        return self.fake_latent.expand(batch, -1)

    # ------------------------------------------------------------------ backbone
    def _run(self, blocks: nn.ModuleList, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in blocks:
            if self.config.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask)
        return x

    def encoder_input(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor) -> torch.Tensor:
        """[buffer + e ; z_proj(tokens) + P_enc] with masked rows dropped, after z_proj_ln."""
        b = tokens.shape[0]
        buf = self.config.buffer_size
        u = self.z_proj(tokens) + self.encoder_pos_embed_learned  # (B, L, D)
        buffer_rows = (self.buffer + class_vec.unsqueeze(1)).to(u.dtype)  # (B, buf, D)
        x = torch.cat([buffer_rows, u], dim=1)  # (B, buf + L, D)
        keep = torch.cat([torch.ones(b, buf, device=mask.device), 1 - mask], dim=1).bool()
        x = x[keep].reshape(b, -1, x.shape[-1])  # (B, buf + L_kept, D)
        return self.z_proj_ln(x)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor) -> torch.Tensor:
        """Context encoder on the visible tokens: [B, buf + L_kept, D] (buffer first)."""
        x = self._run(self.encoder_blocks, self.encoder_input(tokens, mask, class_vec))
        return self.encoder_norm(x)

    def predictor_input(self, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """decoder_embed(enc) in the kept slots, mask_token elsewhere, P_dec on the L image slots."""
        b = enc.shape[0]
        buf = self.config.buffer_size
        x = self.decoder_embed(enc)
        keep = torch.cat([torch.ones(b, buf, device=mask.device), 1 - mask], dim=1).bool()
        full = self.mask_token.to(x.dtype).repeat(b, keep.shape[1], 1)  # (B, buf + L, Dd)
        full[keep] = x.reshape(-1, x.shape[-1])
        image = full[:, buf:] + self.decoder_pos_embed_learned
        return torch.cat([full[:, :buf], image], dim=1)

    def predict(self, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Feature predictor: z [B, L, Dd], the per-token condition of the denoising head."""
        x = self._run(self.decoder_blocks, self.predictor_input(enc, mask))
        return self.decoder_norm(x)[:, self.config.buffer_size:]

    def predict_at(self, enc: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """`predict(enc, mask)[query]` [Q, Dd] (`query` [B, L] bool; rows in row then position order), for
        sampling, where the head reads z at the slots it generates only: every block but the last runs on all
        slots, the last one's queries, MLP and the final norm only on the asked slots (plus pads to the row with
        the most). Equal to `predict` up to float rounding; inference only (no attention dropout)."""
        return self._predict_at(self.predictor_input(enc, mask), query)

    def _predict_at(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        blocks = list(self.decoder_blocks)
        if not blocks:  # a predictor without blocks: its norm per slot
            return self.decoder_norm(x[:, self.config.buffer_size:][query])
        for block in blocks[:-1]:
            x = block(x)
        counts = query.sum(dim=1)
        width = int(counts.max())
        if width == 0:  # nothing asked
            return x.new_zeros(0, x.shape[-1])
        # stable sort puts each row's asked positions first, in increasing order (as boolean indexing reads them)
        positions = torch.argsort((~query).to(torch.int8), dim=1, stable=True)[:, :width]
        out = self.decoder_norm(cast(Block, blocks[-1]).forward_at(x, positions + self.config.buffer_size))
        if bool((counts == width).all()):  # the same count in every row (a static batch): no pads
            return out.reshape(-1, out.shape[-1])
        return out[query.gather(1, positions)]

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor) -> torch.Tensor:
        return self.predict(self.encode(tokens, mask, class_vec), mask)

    # ------------------------------------------------------------------ ragged rows (continuous batching)
    def encode_ragged(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor,
                      max_buckets: int = MAX_BUCKETS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`encode` for rows that mask different numbers of tokens (requests at different AR steps).

        Each row's kept tokens (in position order, as `encode`) are moved to the front; the blocks see the rows
        packed and bucketed by length (models/ragged.py: linear layers on the real tokens only, attention per
        bucket of similar rows with the pads masked out of the keys), so a row sees exactly what `encode` shows
        it. Returns (enc [B, buf + K, D] with K the most kept tokens of a row, zeros on pads; positions [B, K]
        of the kept tokens; valid [B, K] bool: False on pads)."""
        b = mask.shape[0]
        buf = self.config.buffer_size
        kept = mask == 0
        # stable sort puts each row's kept positions first, in increasing order
        positions = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)
        counts = kept.sum(dim=1)
        k = int(counts.max())
        positions = positions[:, :k]
        valid = kept.gather(1, positions)
        order = torch.argsort(counts, stable=True)  # rows by length: each bucket's tokens are contiguous
        rows = RaggedRows.plan((counts[order] + buf).tolist(), max_buckets, device=mask.device)
        # one gather builds the packed tokens (sorted rows, each: its buffer slots, then its kept tokens) from
        # [buffer rows (B * buf); z_proj(tokens) + P_enc (B * L)]
        u = self.z_proj(tokens) + self.encoder_pos_embed_learned  # (B, L, D)
        buffer_rows = (self.buffer + class_vec.unsqueeze(1)).to(u.dtype)  # (B, buf, D)
        dim = u.shape[-1]
        source = torch.cat([buffer_rows.reshape(-1, dim), u.reshape(-1, dim)])
        length = u.shape[1]
        from_row = order[:, None]
        slots = torch.cat([from_row * buf + torch.arange(buf, device=mask.device),
                           b * buf + from_row * length + positions[order]], dim=1)  # (B, buf + K) in `source`
        where_sorted = torch.cat([torch.ones(b, buf, dtype=torch.bool, device=mask.device), valid[order]], dim=1)
        packed = self.z_proj_ln(source.index_select(0, slots[where_sorted]))  # (N real tokens, D)
        for block in self.encoder_blocks:
            packed = cast(Block, block).forward_packed(packed, rows)
        width = buf + k
        out_slots = (from_row * width + torch.arange(width, device=mask.device))[where_sorted]
        out = packed.new_zeros(b * width, dim).index_copy_(0, out_slots, self.encoder_norm(packed))
        out = out.view(b, width, dim)
        return out, positions, valid

    def predict_ragged(self, enc: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """`predict` for `encode_ragged`'s output: z [B, L, Dd] (every row has all L slots here)."""
        x = self._ragged_predictor_input(enc, positions, valid)
        return self.decoder_norm(self._run(self.decoder_blocks, x))[:, self.config.buffer_size:]

    def predict_ragged_at(self, enc: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
                          query: torch.Tensor) -> torch.Tensor:
        """`predict_ragged(...)[query]` [Q, Dd], as `predict_at`."""
        return self._predict_at(self._ragged_predictor_input(enc, positions, valid), query)

    def _ragged_predictor_input(self, enc: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """`predictor_input` for `encode_ragged`'s output: [B, buf + L, Dd]."""
        b, k = positions.shape
        buf, length = self.config.buffer_size, self.config.seq_len
        x = self.decoder_embed(enc)  # (B, buf + K, Dd)
        image = self.mask_token.to(x.dtype).repeat(b, length, 1)  # (B, L, Dd)
        rows = torch.arange(b, device=positions.device)[:, None].expand(b, k)
        image[rows[valid], positions[valid]] = x[:, buf:][valid]
        image = image + self.decoder_pos_embed_learned
        return torch.cat([x[:, :buf], image], dim=1)

    @torch.no_grad()
    def target_features(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """This model as the JEPA target: all tokens visible, eval mode, buffer dropped -> [B, L, D]."""
        was_training = self.training
        self.eval()
        try:
            mask = torch.zeros(tokens.shape[:2], device=tokens.device)
            out = self.encode(tokens, mask, self.class_vectors(labels))
        finally:
            self.train(was_training)
        return out[:, self.config.buffer_size:]

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch, target: DJEPA | None = None,
             generator: torch.Generator | None = None) -> LossOutput:
        """Training loss: w_d * denoising (masked tokens, x diffusion_batch_mul draws) + w_j * JEPA.

        `target` is the EMA copy used as target encoder (None: this model, without gradient).
        `generator` drives the mask, label dropout and the head's noise and time draws.
        """
        cfg = self.config
        tokens, labels = batch.tokens, batch.labels
        b, length, c = tokens.shape
        if length != cfg.seq_len or c != cfg.token_dim:
            raise ValueError(f"tokens {tuple(tokens.shape)} do not match the model's (B, {cfg.seq_len}, "
                             f"{cfg.token_dim})")
        mask = training_mask(b, length, ratio_mean=cfg.mask_ratio_mean, ratio_std=cfg.mask_ratio_std,
                             ratio_min=cfg.mask_ratio_min, ratio_max=cfg.mask_ratio_max,
                             generator=generator, device=tokens.device)
        class_vec = self.class_vectors(labels)
        if self.training and cfg.label_drop_prob > 0:
            u = torch.rand(b, generator=generator, device=generator.device if generator else tokens.device)
            drop = (u < cfg.label_drop_prob).to(tokens.device, class_vec.dtype)[:, None]
            class_vec = drop * self.fake_latent + (1 - drop) * class_vec
        z = self(tokens, mask, class_vec)  # (B, L, Dd)

        k = cfg.diffusion_batch_mul
        rows_target = tokens.reshape(b * length, c).repeat(k, 1)
        rows_z = z.reshape(b * length, -1).repeat(k, 1)
        rows_mask = mask.reshape(b * length).repeat(k)
        denoise = self.diffloss.loss(rows_target, rows_z, rows_mask, generator)

        if self.jepaloss is not None and cfg.jepa_weight > 0:
            tgt = (target if target is not None else self).target_features(tokens, labels)
            jepa = self.jepaloss(z, tgt, mask)
        else:
            jepa = torch.zeros((), device=tokens.device)
        total = cfg.diffusion_weight * denoise + cfg.jepa_weight * jepa
        return LossOutput(total=total, denoise=denoise, jepa=jepa, mask_ratio=float(mask[0].mean()))
