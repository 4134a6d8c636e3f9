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

Local text condition (`SpeechConfig.local_text`, a switch; off reproduces the prefix-only model). Pure
prefix attention must discover the text-audio alignment by itself, which takes many steps; on a CPU
budget it does not get them (a 60-step run learns spectra but no words). So each token slot also gets
the text AT ITS PLACE: the length model's per-symbol durations, stretched proportionally to the
utterance's frames (the true frame count in training; the predicted, speed-scaled count when
sampling), with half the length model's bias as a pause after the last symbol (espeak-ng ends every
utterance with one; half separated pauses from speech best in a check of slot energies, `local_tail`),
say which symbol each slot's centre frame speaks (`proportional_alignment`). The slot's input gets
conv1d(local_emb(text)) at that symbol (kernel 9: four symbols each side, which absorbs the alignment's
drift: a comma's pause lands about half a pause off mid-sentence) plus a projection of its phase within
the symbol, in the encoder (added to visible tokens) and in the predictor (added to every slot, masked
ones included, through `local_to_decoder`).
The backbone, heads, masking, JEPA loss and sampler are unchanged; the null condition (empty text) zeroes
the local condition too, so guidance still contrasts text against no text. This is the FastSpeech idea
of expanding text by durations, with durations from a closed-form model rather than an aligner: it works
here because espeak-ng speech is very regular (the length model alone predicts held-out durations within
2%); on a natural voice the durations would come from a trained aligner instead. `text_prefix=False` then
drops the per-symbol prefix rows (keeping the `num_buffer` learned rows): a pilot (bench/train_speech.md)
learned exactly as fast per step with and without them, and 2.2x faster per second without, since the
192 prefix rows were most of the sequence. The default voice uses local conditioning without the text
prefix; the prefix-only and prefix + local variants stay available and tested.

Measured alignment (`SpeechConfig.alignment="measured"`). The proportional alignment places mid-sentence
symbols several slots off (the per-symbol durations of a linear length model ignore context and pauses),
so the model learns rhythm but hardly which symbol makes which spectrum. An espeak-ng corpus knows better:
its `alignments.csv` (`data/espeak_align.py`) holds each word's measured start and end, from which every
character gets its frames (a word's letters share its span, spaces and punctuation the pause after it, the
final punctuation the closing pause). Training places the text by these MEASURED durations (`SpeechBatch.
durations`); sampling by the `DurationModel`'s (a two-layer conv net over symbol embeddings, fit on the
measured durations before training and frozen), stretched to the length model's frame count as before,
so `speed` and the utterance length keep their meaning. No tail: the pauses belong to symbols.
With `symbols="phoneme-events"` the symbols are espeak-ng's phonemes (IPA) and the measured durations its
phoneme timings (`phonemes.csv`): each symbol gets its own span instead of a share of its word's.

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
from typing import Any, Literal

import torch
from torch import nn

from djepa_core.config import ModelConfig, from_dict_strict
from djepa_core.models.djepa import DJEPA, LossOutput
from djepa_core.models.durations import DurationModel, LengthModel, proportional_alignment
from djepa_core.models.masking import truncated_normal_ratio
from djepa_core.text.symbols import SymbolKind, symbol_set
from djepa_core.tokenizers.audio import LOG_FLOOR, MelTokenizer

Alignment = Literal["proportional", "measured"]


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
    local_text: bool = False  # each slot also gets the text at its place under the proportional alignment
    text_prefix: bool = True  # the prefix holds one row per symbol (False: only the num_buffer rows)
    local_kernel: int = 9  # symbols each side seen by a slot's local condition: local_kernel // 2
    local_tail: float = 0.5  # fraction of the length model's bias placed after the last symbol (the rest spread)
    alignment: Alignment = "proportional"  # local condition's durations: the length model's, or "measured"

    def __post_init__(self) -> None:
        symbol_set(self.symbols)  # validates the name
        if self.max_text < 1 or self.num_buffer < 0 or self.frames_per_token < 1:
            raise ValueError(f"invalid speech config {self}")
        if not 0.0 <= self.text_drop_prob < 1.0:
            raise ValueError(f"text_drop_prob must be in [0, 1), got {self.text_drop_prob}")
        if not (self.text_prefix or self.local_text):
            raise ValueError("the text must condition the model somewhere: text_prefix or local_text")
        if self.prefix_len < 1:
            raise ValueError("a prefix without text rows needs num_buffer >= 1")
        if not 0.0 <= self.local_tail <= 1.0:
            raise ValueError(f"local_tail must be in [0, 1], got {self.local_tail}")
        if self.local_kernel < 1 or self.local_kernel % 2 == 0:
            raise ValueError(f"local_kernel must be odd and >= 1, got {self.local_kernel}")
        if self.alignment not in ("proportional", "measured"):
            raise ValueError(f"alignment must be 'proportional' or 'measured', got {self.alignment!r}")
        if self.alignment == "measured" and not self.local_text:
            raise ValueError("a measured alignment conditions the local text: it needs local_text=True")

    @property
    def prefix_len(self) -> int:
        return self.num_buffer + (self.max_text if self.text_prefix else 0)

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
    frames: torch.Tensor | None = None  # (B,) mel frames per row (the local alignment's span); None: lengths * k
    durations: torch.Tensor | None = None  # (B, T) measured mel frames per symbol (0 at padding); None: predicted


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
        d = config.encoder_dim
        self.text_emb = nn.Embedding(speech.vocab_size, d)
        self.length_model = LengthModel(speech.vocab_size)
        if speech.alignment == "measured":
            self.duration_model = DurationModel(speech.vocab_size)
        nn.init.normal_(self.text_emb.weight, std=0.02)  # as the class table
        if speech.local_text:
            self.local_emb = nn.Embedding(speech.vocab_size, d)
            self.local_conv = nn.Conv1d(d, d, speech.local_kernel, padding=speech.local_kernel // 2)
            self.local_phase = nn.Linear(2, d)
            self.local_to_decoder = nn.Linear(d, config.decoder_dim)
            self._reset_local()

    def _reset_local(self) -> None:
        nn.init.normal_(self.local_emb.weight, std=0.02)
        nn.init.xavier_uniform_(self.local_conv.weight)
        if self.local_conv.bias is not None:
            nn.init.zeros_(self.local_conv.bias)
        for lin in (self.local_phase, self.local_to_decoder):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if "text_emb" in self._modules:  # (DJEPA's constructor calls this before the text table exists)
            nn.init.normal_(self.text_emb.weight, std=0.02)
            nn.init.zeros_(self.length_model.durations)
            nn.init.zeros_(self.length_model.bias)
        if "local_emb" in self._modules:
            self._reset_local()
        if "duration_model" in self._modules:
            for m in self.duration_model.children():
                m.reset_parameters()  # type: ignore[operator]

    def text_prefix(self, text: torch.Tensor, speakers: torch.Tensor | None = None) -> torch.Tensor:
        """Symbol ids [B, T <= max_text] -> prefix rows [B, P, D] (buffer + symbol + speaker embeddings)."""
        b, t = text.shape
        if t > self.speech.max_text:
            raise ValueError(f"text of {t} symbols is longer than the model's {self.speech.max_text}")
        spk = speakers if speakers is not None else torch.zeros(b, dtype=torch.long, device=text.device)
        if not self.speech.text_prefix:
            return self.buffer + self.class_vectors(spk)[:, None]
        ids = torch.nn.functional.pad(text, (0, self.speech.max_text - t))
        emb = self.text_emb(ids)  # (B, T, D)
        rows = torch.cat([emb.new_zeros(b, self.speech.num_buffer, emb.shape[-1]), emb], dim=1)
        return rows + self.buffer + self.class_vectors(spk)[:, None]

    def symbol_durations(self, text: torch.Tensor, measured: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """(durations [B, T] > 0 at real symbols, 0 at padding; tail frames) that `local_condition` stretches
        over an utterance. `alignment="measured"`: `measured` [B, T] when given (training on an aligned
        corpus), else the duration model's; no tail (the final pause is the last symbols'). Otherwise the
        length model's per-symbol durations with `local_tail` of its bias as the tail."""
        real = text != 0
        zero = torch.zeros((), device=text.device)
        if self.speech.alignment == "measured":
            if measured is None:
                with torch.no_grad():
                    measured = self.duration_model(text)
            d = measured.to(text.device).float()[:, : text.shape[1]].clamp(min=0)
            return torch.where(real, d + 0.01, zero), 0.0  # zero-length symbols (spaces without a pause) kept last
        dur = self.length_model.durations.detach().clamp(min=0)
        floor = dur.mean().clamp(min=1e-3) * 0.05  # every real symbol keeps some time
        tail = float(self.length_model.bias.detach().clamp(min=0)) * self.speech.local_tail
        return torch.where(real, dur[text] + floor, zero), tail

    def local_condition(self, text: torch.Tensor, frames: torch.Tensor, slots: int,
                        durations: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-slot text condition [B, L', D] (None without `local_text`): conv(local_emb(text)) taken at the
        symbol each slot speaks under `proportional_alignment` of `symbol_durations` (the measured ones
        `durations` [B, T] when given) over `frames` [B] mel frames, plus a projection of the phase within
        that symbol. Zero for rows of the empty text (the guidance's null condition) and for slots past the
        row's frames."""
        if not self.speech.local_text:
            return None
        real = text != 0
        sym, tail = self.symbol_durations(text, durations)
        idx, phase = proportional_alignment(sym, frames, slots, self.speech.frames_per_token, tail)
        feats = self.local_conv(self.local_emb(text * real).transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        local = feats.gather(1, idx[..., None].expand(-1, -1, feats.shape[-1]))
        local = local + self.local_phase(torch.stack([phase, 1 - phase], dim=-1))
        k = self.speech.frames_per_token
        inside = (torch.arange(slots, device=text.device)[None] * k) < frames.to(text.device)[:, None]
        keep = inside & real.any(1, keepdim=True)
        return local * keep[..., None].to(local.dtype)

    def condition(self, text: torch.Tensor, frames: torch.Tensor, slots: int, speakers: torch.Tensor | None = None,
                  durations: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prefix rows [B, P, D], local condition [B, L', D] or None) of symbol ids [B, T] spanning `frames`
        (`durations`: measured frames per symbol, used by `alignment="measured"` models)."""
        return self.text_prefix(text, speakers), self.local_condition(text, frames, slots, durations)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor,
               local: torch.Tensor | None = None) -> torch.Tensor:
        x = self._run(self.encoder_blocks, self.encoder_input(tokens, mask, class_vec, local))
        return self.encoder_norm(x)

    def predict(self, enc: torch.Tensor, mask: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        x = self._run(self.decoder_blocks, self.predictor_input(enc, mask, local))
        return self.decoder_norm(x)[:, self.config.buffer_size:]

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor,
                local: torch.Tensor | None = None) -> torch.Tensor:
        return self.predict(self.encode(tokens, mask, class_vec, local), mask, local)

    def encoder_input(self, tokens: torch.Tensor, mask: torch.Tensor, class_vec: torch.Tensor,
                      local: torch.Tensor | None = None) -> torch.Tensor:
        """As DJEPA's, with `class_vec` the full prefix rows [B, P, D] from `text_prefix`, and tokens [B, L', C]
        in the first L' <= L slots (batches padded to their longest utterance use fewer slots); `local`
        [B, L', D] is added to each slot's input."""
        b, slots = tokens.shape[:2]
        u = self.z_proj(tokens) + self.encoder_pos_embed_learned[:, :slots]  # (B, L', D)
        if local is not None:
            u = u + local.to(u.dtype)
        x = torch.cat([class_vec.to(u.dtype), u], dim=1)  # (B, P + L, D)
        keep = torch.cat([torch.ones(b, class_vec.shape[1], device=mask.device), 1 - mask], dim=1).bool()
        x = x[keep].reshape(b, -1, x.shape[-1])
        return self.z_proj_ln(x)

    def predictor_input(self, enc: torch.Tensor, mask: torch.Tensor,
                        local: torch.Tensor | None = None) -> torch.Tensor:
        """As DJEPA's, over the first L' = mask.shape[1] slots, plus `local` (projected) on every slot."""
        b, slots = mask.shape
        buf = self.config.buffer_size
        x = self.decoder_embed(enc)
        keep = torch.cat([torch.ones(b, buf, device=mask.device), 1 - mask], dim=1).bool()
        full = self.mask_token.to(x.dtype).repeat(b, keep.shape[1], 1)  # (B, P + L', Dd)
        full[keep] = x.reshape(-1, x.shape[-1])
        speech = full[:, buf:] + self.decoder_pos_embed_learned[:, :slots]
        if local is not None:
            speech = speech + self.local_to_decoder(local).to(speech.dtype)
        return torch.cat([full[:, :buf], speech], dim=1)

    @torch.no_grad()
    def speech_target_features(self, tokens: torch.Tensor, text: torch.Tensor, speakers: torch.Tensor | None,
                               frames: torch.Tensor | None = None,
                               durations: torch.Tensor | None = None) -> torch.Tensor:
        """This model as the JEPA target: all tokens visible, eval mode, prefix dropped -> [B, L, D]."""
        was_training = self.training
        self.eval()
        try:
            mask = torch.zeros(tokens.shape[:2], device=tokens.device)
            if frames is None:
                frames = torch.full((tokens.shape[0],), tokens.shape[1] * self.speech.frames_per_token,
                                    device=tokens.device)
            prefix, local = self.condition(text, frames, tokens.shape[1], speakers, durations)
            out = self.encode(tokens, mask, prefix, local)
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
        frames = batch.frames if batch.frames is not None else lengths * self.speech.frames_per_token
        frames = frames.to(tokens.device)
        prefix, local = self.condition(cond_text, frames, length, batch.speakers, batch.durations)
        z = self(tokens, drop, prefix, local)  # (B, L, Dd)

        k = cfg.diffusion_batch_mul
        rows_target = tokens.reshape(b * length, c).repeat(k, 1)
        rows_z = z.reshape(b * length, -1).repeat(k, 1)
        rows_mask = masked.float().reshape(b * length).repeat(k)
        denoise = self.diffloss.loss(rows_target, rows_z, rows_mask, generator)
        if self.jepaloss is not None and cfg.jepa_weight > 0:
            tgt_model = target if isinstance(target, TextToSpeechDJEPA) else self
            tgt = tgt_model.speech_target_features(tokens, cond_text, batch.speakers, frames, batch.durations)
            jepa = self.jepaloss(z, tgt, masked.float())
        else:
            jepa = torch.zeros((), device=tokens.device)
        total = cfg.diffusion_weight * denoise + cfg.jepa_weight * jepa
        return LossOutput(total=total, denoise=denoise, jepa=jepa, mask_ratio=r)
