"""How long each text symbol lasts in a speech model: the length model (frames of an utterance), the duration
model (frames per symbol, for the measured alignment) and the alignment of symbols to mel-token slots.
Used by `models/tts.py` (TextToSpeechDJEPA) and by its training and sampling."""

from __future__ import annotations

import math

import torch
from torch import nn


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


class DurationModel(nn.Module):
    """Mel frames per symbol from the text around it, for the measured alignment (`alignment="measured"`):
    symbol embedding -> two convolutions (kernel 5, ReLU) -> log(1 + frames). Fit (`fit`) on the corpus's
    measured durations before the main training and frozen there; at sampling its durations are stretched
    to the length model's (speed-scaled) frame count, so `speed` and the utterance's length stay the length
    model's."""

    def __init__(self, vocab_size: int, width: int = 64, kernel: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab_size, width, padding_idx=0)
        self.conv1 = nn.Conv1d(width, width, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(width, width, kernel, padding=kernel // 2)
        self.out = nn.Linear(width, 1)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """Ids [B, T] -> predicted frames per symbol [B, T] (> 0 at real symbols, 0 at padding)."""
        real = (text != 0)[:, None].to(self.emb.weight.dtype)
        x = self.emb(text).transpose(1, 2) * real
        x = torch.relu(self.conv1(x)) * real
        x = torch.relu(self.conv2(x)) * real
        log_d = self.out(x.transpose(1, 2))[..., 0]
        return torch.expm1(log_d.clamp(min=-10.0, max=10.0)).clamp(min=0.0) * real[:, 0]

    def fit(self, text: torch.Tensor, durations: torch.Tensor, steps: int = 600, batch_size: int = 128,
            lr: float = 3e-3, seed: int = 0) -> float:
        """Adam on the squared error of log(1 + frames) at real symbols (`text` [N, T] ids, `durations`
        [N, T] measured frames); returns the mean absolute error in frames per symbol on all N rows."""
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        target = torch.log1p(durations.float().clamp(min=0))
        real = (text != 0).float()
        was_training = self.training
        self.train()
        with torch.enable_grad():
            for step in range(steps):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                idx = torch.randint(0, text.shape[0], (min(batch_size, text.shape[0]),), generator=g)
                pred = torch.log1p(self(text[idx]))
                loss = (((pred - target[idx]) ** 2) * real[idx]).sum() / real[idx].sum().clamp(min=1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.train(was_training)
        with torch.no_grad():
            err = ((self(text) - durations.float()).abs() * real).sum() / real.sum().clamp(min=1)
        return float(err)


def proportional_alignment(durations: torch.Tensor, frames: torch.Tensor, slots: int,
                           frames_per_token: int, tail: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which symbol each token slot speaks, under durations stretched to the utterance's frames.

    `durations` [B, T] >= 0 (0 at padding; every real symbol should have a small positive floor),
    `frames` [B] the utterance's mel frames, `tail` >= 0 frames after the last symbol (the length
    model's bias: espeak-ng ends each utterance with a pause). Symbol i spans frames
    [c_{i-1}, c_i) * frames / (sum(d) + tail) with c the cumulative durations; slot j's centre frame
    (j + 1/2) k picks its symbol. Returns (symbol index [B, L] long, clamped to the row's last real
    symbol; phase [B, L] in [0, 1], how far the centre lies through that symbol)."""
    b = durations.shape[0]
    d = durations.float()
    total = d.sum(1, keepdim=True).clamp(min=1e-6) + max(0.0, tail)
    ends = d.cumsum(1) / total * frames.float().to(d.device)[:, None]  # (B, T) end frame of each symbol
    centre = (torch.arange(slots, device=d.device, dtype=torch.float32) + 0.5) * frames_per_token
    centre = centre[None].expand(b, -1).contiguous()
    last = ((durations > 0).long().cumsum(1).argmax(1)).clamp(min=0)  # index of the last real symbol
    idx = torch.searchsorted(ends.contiguous(), centre, right=True)
    idx = torch.minimum(idx, last[:, None])
    end = ends.gather(1, idx)
    start = torch.where(idx > 0, ends.gather(1, (idx - 1).clamp(min=0)), torch.zeros_like(end))
    phase = ((centre - start) / (end - start).clamp(min=1e-6)).clamp(0.0, 1.0)
    return idx, phase
