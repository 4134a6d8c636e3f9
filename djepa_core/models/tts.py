"""Text-to-speech D-JEPA: the image model's backbone and heads over mel tokens, conditioned on text.

Shapes: B batch, L = `grid[0]` mel-token slots (the longest utterance, in tokens of k frames), C = k * 80
channels, T = `max_text` symbol slots, P = `num_buffer` + T prefix rows, D encoder width.

Conditioning: a text PREFIX, not cross-attention. D-JEPA already conditions through a prefix: the
encoder sees `buffer_size` learned buffer rows (plus the class embedding) before the visible tokens,
and the predictor drops those rows at its output. Here the prefix is [num_buffer learned rows ; one row
per text symbol], each row = the learned buffer row (so the buffer doubles as the position table of
the text) + the symbol's embedding + the speaker embedding (the class table; one speaker by default).
Why a prefix: (1) the network is exactly `DJEPA` - same blocks, same parameter names, same heads, the
same JEPA loss and EMA target - with no new layer type, which cross-attention would need in every
block; (2) with T ~ 200 and L ~ 300 joint self-attention is cheap, and it lets every mel token attend
to the text and the text rows attend to the visible audio, so the alignment is learned in both
directions (as prefix-conditioned decoder-only TTS models do); (3) guidance needs nothing new: the
null condition is the empty text (every symbol the padding id 0), used for 10% of training rows.

Variable lengths without attention masks: mel tokens past an utterance's end are silence, never
masked and never in the loss, so the known length conditions the generation once they are visible. The
encoder drops masked tokens and needs the same count per row: every row drops as many slots as a
full-length row would have masked at the same ratio (ceil(L r) in training; the same schedule run on L
slots when sampling), its masked tokens first, then its silence slots, and only when a row has too
little silence (rounding), some known tokens - `equalize_drop`. The count depends on nothing but L and
the ratio or step, so a generated row never depends on the other rows of its batch. The length of an utterance
comes from the LENGTH MODEL: mel frames = bias + sum over symbols of a learned non-negative duration per
symbol (a linear model in the symbol counts, fit by least squares on the training corpus).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from djepa_core.config import ModelConfig, from_dict_strict
from djepa_core.models.djepa import DJEPA, LossOutput
from djepa_core.models.masking import truncated_normal_ratio
from djepa_core.text.symbols import SymbolKind, symbol_set
from djepa_core.tokenizers.audio import LOG_FLOOR, MelTokenizer


@dataclass(frozen=True)
class SpeechConfig:
    """The speech-specific settings beside the backbone's :class:`ModelConfig`."""

    symbols: SymbolKind = "characters"
    max_text: int = 192  # symbol slots of the prefix (longer texts are refused)
    num_buffer: int = 8  # learned prefix rows before the text
    text_drop_prob: float = 0.1  # rows trained with the empty text (the guidance's null condition)
    frames_per_token: int = 4
    mel_scale: float = 0.35
    mel_shift: float = -5.4

    def __post_init__(self) -> None:
        symbol_set(self.symbols)  # validates the name
        if self.max_text < 1 or self.num_buffer < 0 or self.frames_per_token < 1:
            raise ValueError(f"invalid speech config {self}")
        if not 0.0 <= self.text_drop_prob < 1.0:
            raise ValueError(f"text_drop_prob must be in [0, 1), got {self.text_drop_prob}")

    @property
    def prefix_len(self) -> int:
        return self.num_buffer + self.max_text

    @property
    def vocab_size(self) -> int:
        return len(symbol_set(self.symbols))

    def tokenizer(self) -> MelTokenizer:
        return MelTokenizer(frames_per_token=self.frames_per_token, scale=self.mel_scale, shift=self.mel_shift)

    @property
    def silence(self) -> float:
        return (math.log(LOG_FLOOR) - self.mel_shift) * self.mel_scale

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeechConfig:
        return from_dict_strict(cls, data, "speech")


def tts_model_config(speech: SpeechConfig, max_tokens: int, width: int, depth: int, heads: int, head_depth: int,
                     head_width: int, head: str = "flow", num_speakers: int = 1, **extra: Any) -> ModelConfig:
    """A backbone config for `speech`: grid (max_tokens,), tokens of k * 80 channels, the prefix as buffer."""
    return ModelConfig(num_classes=num_speakers, grid=(max_tokens,), token_dim=speech.frames_per_token * 80,
                       buffer_size=speech.prefix_len, encoder_dim=width, encoder_depth=depth, encoder_heads=heads,
                       decoder_dim=width, decoder_depth=depth, decoder_heads=heads, head_depth=head_depth,
                       head_width=head_width, head=head, label_drop_prob=0.0, **extra)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SpeechBatch:
    tokens: torch.Tensor  # (B, L, C) mel tokens, silence past each length
    lengths: torch.Tensor  # (B,) int64 tokens of speech per row, 1..L
    text: torch.Tensor  # (B, T) int64 symbol ids, 0-padded, T <= max_text
    speakers: torch.Tensor | None = None  # (B,) int64, None: speaker 0


class LengthModel(nn.Module):
    """Mel frames of an utterance = bias + sum_i duration[symbol_i] (durations >= 0), times 1 / speed."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.durations = nn.Parameter(torch.zeros(vocab_size))
        self.bias = nn.Parameter(torch.zeros(()))

    @staticmethod
    def counts(text: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """Ids [B, T] (0 = padding) -> symbol counts [B, V] (padding not counted)."""
        c = torch.zeros(text.shape[0], vocab_size, device=text.device)
        c.scatter_add_(1, text, torch.ones_like(text, dtype=c.dtype))
        c[:, 0] = 0
        return c

    def forward(self, text: torch.Tensor, speed: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Predicted mel frames [B] (float, >= 1)."""
        frames = self.counts(text, self.durations.numel()) @ self.durations.clamp(min=0) + self.bias
        return (frames / speed).clamp(min=1.0)

    @torch.no_grad()
    def fit(self, text: torch.Tensor, frames: torch.Tensor) -> float:
        """Least squares on [counts, 1] -> frames, durations clamped at 0; returns the mean |relative error|."""
        a = torch.cat([self.counts(text, self.durations.numel()), torch.ones(text.shape[0], 1)], dim=1).double()
        sol = torch.linalg.lstsq(a, frames.double()[:, None], driver="gelsd").solution[:, 0]
        self.durations.copy_(sol[:-1].clamp(min=0).float())
        self.bias.copy_(sol[-1].float())
        pred = self(text)
        return float(((pred - frames.float()).abs() / frames.float()).mean())


def equalize_drop(masked: torch.Tensor, real: torch.Tensor, tie: torch.Tensor, target: int) -> torch.Tensor:
    """Rows of `masked` [B, L] (bool, at most `target` per row) grown to `target` dropped slots each: extra
    slots from the silence past each length first (lowest `tie` first), then from its known tokens."""
    if int(masked.sum(1).max()) > target:
        raise ValueError(f"a row masks more than {target} slots")
    # key: masked first, then padding, then known real tokens; tie in [0, 1) orders within a class
    key = torch.where(masked, torch.zeros_like(tie), torch.where(real, torch.full_like(tie, 2.0),
                                                                 torch.ones_like(tie))) + tie.clamp(0, 0.999)
    rank = key.argsort(dim=1).argsort(dim=1)
    return rank < target


class TextToSpeechDJEPA(DJEPA):
    """D-JEPA over mel tokens with a text prefix (see the module docstring); `loss(SpeechBatch)`."""

    def __init__(self, config: ModelConfig, speech: SpeechConfig) -> None:
        if config.buffer_size != speech.prefix_len or len(config.grid) != 1:
            raise ValueError(f"a TTS backbone needs buffer_size = num_buffer + max_text ({speech.prefix_len}) and "
                             f"a 1-D grid, got {config.buffer_size} and {config.grid}")
        if config.token_dim != speech.frames_per_token * 80:
            raise ValueError(f"token_dim {config.token_dim} != frames_per_token * 80")
        super().__init__(config)
        self.speech = speech
        self.text_emb = nn.Embedding(speech.vocab_size, config.encoder_dim)
        self.length_model = LengthModel(speech.vocab_size)
        nn.init.normal_(self.text_emb.weight, std=0.02)  # as the class table

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if "text_emb" in self._modules:  # (DJEPA's constructor calls this before the text table exists)
            nn.init.normal_(self.text_emb.weight, std=0.02)
            nn.init.zeros_(self.length_model.durations)
            nn.init.zeros_(self.length_model.bias)

    def text_prefix(self, text: torch.Tensor, speakers: torch.Tensor | None = None) -> torch.Tensor:
        """Symbol ids [B, T <= max_text] -> prefix rows [B, P, D] (buffer + symbol + speaker embeddings)."""
        b, t = text.shape
        if t > self.speech.max_text:
            raise ValueError(f"text of {t} symbols is longer than the model's {self.speech.max_text}")
        ids = torch.nn.functional.pad(text, (0, self.speech.max_text - t))
        emb = self.text_emb(ids)  # (B, T, D)
        rows = torch.cat([emb.new_zeros(b, self.speech.num_buffer, emb.shape[-1]), emb], dim=1)
        spk = speakers if speakers is not None else torch.zeros(b, dtype=torch.long, device=text.device)
        return rows + self.buffer + self.class_vectors(spk)[:, None]

    def encoder_input(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor) -> torch.Tensor:
        """As DJEPA's, with `class_vec` the full prefix rows [B, P, D] from `text_prefix`, and tokens [B, L', C]
        in the first L' <= L slots (batches padded to their longest utterance use fewer slots)."""
        b, slots = tokens.shape[:2]
        u = self.z_proj(tokens) + self.encoder_pos_embed_learned[:, :slots]  # (B, L', D)
        x = torch.cat([class_vec.to(u.dtype), u], dim=1)  # (B, P + L, D)
        keep = torch.cat([torch.ones(b, class_vec.shape[1], device=mask.device), 1 - mask], dim=1).bool()
        x = x[keep].reshape(b, -1, x.shape[-1])
        return self.z_proj_ln(x)

    def predictor_input(self, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """As DJEPA's, over the first L' = mask.shape[1] slots."""
        b, slots = mask.shape
        buf = self.config.buffer_size
        x = self.decoder_embed(enc)
        keep = torch.cat([torch.ones(b, buf, device=mask.device), 1 - mask], dim=1).bool()
        full = self.mask_token.to(x.dtype).repeat(b, keep.shape[1], 1)  # (B, P + L', Dd)
        full[keep] = x.reshape(-1, x.shape[-1])
        speech = full[:, buf:] + self.decoder_pos_embed_learned[:, :slots]
        return torch.cat([full[:, :buf], speech], dim=1)

    @torch.no_grad()
    def speech_target_features(self, tokens: torch.Tensor, text: torch.Tensor,
                               speakers: torch.Tensor | None) -> torch.Tensor:
        """This model as the JEPA target: all tokens visible, eval mode, prefix dropped -> [B, L, D]."""
        was_training = self.training
        self.eval()
        try:
            mask = torch.zeros(tokens.shape[:2], device=tokens.device)
            out = self.encode(tokens, mask, self.text_prefix(text, speakers))
        finally:
            self.train(was_training)
        return out[:, self.config.buffer_size:]

    def loss(self, batch: SpeechBatch, target: DJEPA | None = None,  # type: ignore[override]
             generator: torch.Generator | None = None) -> LossOutput:
        """w_d * denoising (masked speech tokens) + w_j * JEPA; the length model is fit separately (`fit`)."""
        cfg = self.config
        tokens, lengths, text = batch.tokens, batch.lengths.to(batch.tokens.device), batch.text
        b, length, c = tokens.shape
        if length > cfg.seq_len or c != cfg.token_dim or int(lengths.max()) > length:
            raise ValueError(f"tokens {tuple(tokens.shape)} (lengths up to {int(lengths.max())}) do not fit the "
                             f"model's (B, <= {cfg.seq_len}, {cfg.token_dim})")
        dev = generator.device if generator is not None else tokens.device
        r = truncated_normal_ratio(cfg.mask_ratio_mean, cfg.mask_ratio_std, cfg.mask_ratio_min,
                                   cfg.mask_ratio_max, generator)
        u = torch.rand(b, length, generator=generator, device=dev).to(tokens.device)
        real = torch.arange(length, device=tokens.device)[None] < lengths[:, None]
        n_mask = torch.ceil(lengths.float() * r).long().clamp(min=1)
        rank = torch.where(real, u, u + 2).argsort(1).argsort(1)  # real slots first, random within
        masked = rank < n_mask[:, None]
        drop = equalize_drop(masked, real, u, min(length, math.ceil(length * r))).float()
        cond_text = text
        if self.training and self.speech.text_drop_prob > 0:
            keep = torch.rand(b, generator=generator, device=dev).to(text.device) >= self.speech.text_drop_prob
            cond_text = text * keep[:, None].long()
        z = self(tokens, drop, self.text_prefix(cond_text, batch.speakers))  # (B, L, Dd)

        k = cfg.diffusion_batch_mul
        rows_target = tokens.reshape(b * length, c).repeat(k, 1)
        rows_z = z.reshape(b * length, -1).repeat(k, 1)
        rows_mask = masked.float().reshape(b * length).repeat(k)
        denoise = self.diffloss.loss(rows_target, rows_z, rows_mask, generator)
        if self.jepaloss is not None and cfg.jepa_weight > 0:
            tgt_model = target if isinstance(target, TextToSpeechDJEPA) else self
            tgt = tgt_model.speech_target_features(tokens, cond_text, batch.speakers)
            jepa = self.jepaloss(z, tgt, masked.float())
        else:
            jepa = torch.zeros((), device=tokens.device)
        total = cfg.diffusion_weight * denoise + cfg.jepa_weight * jepa
        return LossOutput(total=total, denoise=denoise, jepa=jepa, mask_ratio=r)
