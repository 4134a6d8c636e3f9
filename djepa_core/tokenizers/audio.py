"""Speech features: log-mel spectrograms in the LJSpeech convention, mel tokens, and a Griffin-Lim vocoder.

Plain torch (torchaudio does not import beside the torch used here).

Features (the common LJSpeech / HiFi-GAN convention): 22,050 Hz audio, STFT with n_fft 1024, hop 256,
a periodic Hann window of 1024, the signal reflect-padded by (n_fft - hop) / 2 on each side and no
centering, so N samples give floor(N / hop) frames; magnitude sqrt(re^2 + im^2 + 1e-9); 80 mel bands
from 0 to 8,000 Hz with the Slaney mel scale and Slaney area normalisation (librosa's default
filterbank); then natural log with a floor: log_mel = ln(max(mel, 1e-5)), so silence is about -11.5.

Tokens: log-mels are mapped to roughly unit scale by tokens = (log_mel - shift) * scale with
shift -5.4 and scale 0.35 by default (measured on 200 sentences of `djepa data speech`: log-mel mean
-5.39, std 2.82, so tokens have mean about 0 and std about 1; the scale belongs here, never to the
trainer), then `frames_per_token` consecutive frames are flattened into one token: token j holds
frames j*k .. j*k+k-1, channel index frame_in_token * 80 + mel.
Mels shorter than a whole number of tokens are padded with silence (log 1e-5).

Vocoder (no weights to download): mel -> linear magnitude by non-negative least squares against the
filterbank (the pseudo-inverse clamped at a floor, refined by multiplicative updates), then fast
Griffin-Lim (Perraudin, Balazs and Søndergaard 2013): c_n = P_C(t_{n-1}) (STFT of the ISTFT of the
magnitude with the current phase), t_n = c_n + alpha (c_n - c_{n-1}), alpha 0.99, from a seeded
random phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    win: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        if self.win > self.n_fft or (self.n_fft - self.hop) % 2:
            raise ValueError(f"need win <= n_fft and n_fft - hop even, got {self}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1


# ---------------------------------------------------------------------------------------------- mel scale
_F_SP = 200.0 / 3  # Slaney: 3 mels per 200 Hz below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0  # then 27 mels per factor 6.4 in frequency


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's `htk=False`)."""
    f = f.double()
    lin = f / _F_SP
    log = _MIN_LOG_MEL + torch.log(f.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    m = m.double()
    lin = m * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL))
    return torch.where(m >= _MIN_LOG_MEL, log, lin)


def mel_filterbank(cfg: MelConfig) -> torch.Tensor:
    """Triangular filters [n_mels, n_freqs] (float32), Slaney-normalised to constant energy per band.

    Band i spans the mel points i..i+2 of n_mels + 2 points equally spaced in mel from fmin to fmax;
    each filter is scaled by 2 / (f[i+2] - f[i]) (librosa's `norm="slaney"`).
    """
    fft_freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_freqs, dtype=torch.float64)  # (F,)
    mels = torch.linspace(float(hz_to_mel(torch.tensor(cfg.fmin))), float(hz_to_mel(torch.tensor(cfg.fmax))),
                          cfg.n_mels + 2, dtype=torch.float64)
    pts = mel_to_hz(mels)  # (M + 2,)
    fdiff = pts[1:] - pts[:-1]  # (M + 1,)
    ramps = pts[:, None] - fft_freqs[None, :]  # (M + 2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)  # (M, F)
    weights = weights * (2.0 / (pts[2:] - pts[:-2]))[:, None]
    return weights.float()


# ---------------------------------------------------------------------------------------------- STFT
class Spectral(nn.Module):
    """STFT / inverse STFT of the convention above; buffers: the window and the mel filterbank."""

    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(self, cfg: MelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MelConfig()
        win = torch.hann_window(cfg.win, periodic=True, dtype=torch.float64)
        left = (cfg.n_fft - cfg.win) // 2  # a window shorter than n_fft sits in the middle of the frame
        self.register_buffer("window", F.pad(win, (left, cfg.n_fft - cfg.win - left)).float(), persistent=False)
        self.register_buffer("mel_basis", mel_filterbank(cfg), persistent=False)

    @property
    def pad(self) -> int:
        return (self.cfg.n_fft - self.cfg.hop) // 2

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [B, N] -> complex spectrogram [B, n_freqs, floor(N / hop)] (N >= n_fft // 2 needed)."""
        if audio.dim() != 2:
            raise ValueError(f"expected audio [B, N], got {tuple(audio.shape)}")
        if audio.shape[-1] <= self.pad:
            raise ValueError(f"audio of {audio.shape[-1]} samples is too short (need > {self.pad})")
        x = F.pad(audio.float().unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)
        return torch.stft(x, self.cfg.n_fft, self.cfg.hop, self.cfg.n_fft, window=self.window.to(x.device),
                          center=False, return_complex=True)

    def istft(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Complex spectrogram [B, n_freqs, T] -> audio [B, length] (default T * hop): windowed
        overlap-add divided by the summed squared window (the least-squares inverse of `stft`)."""
        b, _, t = spec.shape
        n_fft, hop = self.cfg.n_fft, self.cfg.hop
        window = self.window.to(spec.device)
        frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, T)
        total = (t - 1) * hop + n_fft
        y = F.fold(frames, (1, total), kernel_size=(1, n_fft), stride=(1, hop)).reshape(b, total)
        env = F.fold((window**2)[None, :, None].expand(1, n_fft, t), (1, total), kernel_size=(1, n_fft),
                     stride=(1, hop)).reshape(total)
        y = y / torch.where(env > 1e-8, env, torch.ones_like(env))
        length = t * hop if length is None else length
        y = y[:, self.pad:self.pad + length]
        return F.pad(y, (0, length - y.shape[1])) if y.shape[1] < length else y

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        s = torch.view_as_real(self.stft(audio))
        return torch.sqrt(s.pow(2).sum(-1) + 1e-9)  # (B, F, T)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [B, N] -> log-mel [B, n_mels, floor(N / hop)]."""
        mel = torch.matmul(self.mel_basis.to(audio.device), self.magnitude(audio))
        return torch.log(mel.clamp(min=LOG_FLOOR))

    def mel_to_linear(self, log_mel: torch.Tensor, iters: int = 30) -> torch.Tensor:
        """Log-mel [B, M, T] -> linear magnitude [B, F, T] >= 0: approximately argmin_{S >= 0} ||basis S - mel||.

        Start from the pseudo-inverse clamped at a floor, then multiplicative NNLS updates
        S <- S * (A^T mel) / (A^T A S) (Lee and Seung), which keep S non-negative.
        """
        a = self.mel_basis.to(log_mel.device)  # (M, F)
        mel = torch.exp(log_mel.float())
        s = torch.matmul(torch.linalg.pinv(a), mel).clamp(min=LOG_FLOOR)  # (B, F, T)
        at_mel = torch.matmul(a.t(), mel)
        ata = a.t() @ a
        covered = a.sum(0) > 0  # bins above fmax have no filter: keep them at the floor
        for _ in range(iters):
            s = s * at_mel / (torch.matmul(ata, s) + 1e-12)
        return torch.where(covered[None, :, None], s, torch.full_like(s, LOG_FLOOR))

    def griffin_lim(self, magnitude: torch.Tensor, iters: int = 32, momentum: float = 0.99,
                    generator: torch.Generator | None = None, length: int | None = None) -> torch.Tensor:
        """Linear magnitude [B, F, T] -> audio [B, length] by fast Griffin-Lim (momentum `alpha`)."""
        if not 0.0 <= momentum < 1.0 + 1e-9:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        mag = magnitude.float()
        g = generator or torch.Generator().manual_seed(0)
        phase = torch.rand(mag.shape, generator=g, device=g.device).to(mag.device) * (2 * math.pi)
        c_prev = mag * torch.polar(torch.ones_like(phase), phase)  # t_0
        t_n = c_prev
        length = mag.shape[-1] * self.cfg.hop if length is None else length
        for _ in range(iters):
            unit = t_n / t_n.abs().clamp(min=1e-16)
            c_n = self.stft(self.istft(mag * unit, length))  # projection onto consistent spectrograms
            t_n = c_n + momentum * (c_n - c_prev)
            c_prev = c_n
        unit = t_n / t_n.abs().clamp(min=1e-16)
        return self.istft(mag * unit, length)


def spectral_convergence(magnitude: torch.Tensor, reference: torch.Tensor) -> float:
    """|| |S| - |S_ref| ||_F / || |S_ref| ||_F (lower is better; 0 for identical)."""
    return float(torch.linalg.norm(magnitude - reference) / torch.linalg.norm(reference))


# ---------------------------------------------------------------------------------------------- tokens
class MelTokenizer(nn.Module):
    """Audio [B, N] <-> log-mel [B, 80, T] <-> tokens [B, ceil(T / k), k * 80]; vocoder: Griffin-Lim."""

    def __init__(self, cfg: MelConfig | None = None, frames_per_token: int = 4, scale: float = 0.35,
                 shift: float = -5.4) -> None:
        super().__init__()
        if frames_per_token < 1:
            raise ValueError(f"frames_per_token must be >= 1, got {frames_per_token}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.spectral = Spectral(cfg)
        self.cfg = self.spectral.cfg
        self.frames_per_token = frames_per_token
        self.scale = float(scale)
        self.shift = float(shift)

    @property
    def token_dim(self) -> int:
        return self.frames_per_token * self.cfg.n_mels

    @property
    def samples_per_token(self) -> int:
        return self.frames_per_token * self.cfg.hop

    @property
    def silence_token_value(self) -> float:
        """The token value of every channel of a silent frame."""
        return (math.log(LOG_FLOOR) - self.shift) * self.scale

    def num_tokens(self, num_samples: int) -> int:
        return -(-self.spectral.num_frames(num_samples) // self.frames_per_token)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        return self.spectral.mel(audio)

    def mel_to_tokens(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, M, T] -> tokens [B, ceil(T / k), k M] (the tail padded with silence)."""
        b, m, t = log_mel.shape
        if m != self.cfg.n_mels:
            raise ValueError(f"expected {self.cfg.n_mels} mel bands, got {m}")
        k = self.frames_per_token
        pad = -t % k
        x = F.pad(log_mel.float(), (0, pad), value=math.log(LOG_FLOOR))
        x = (x - self.shift) * self.scale
        return x.transpose(1, 2).reshape(b, (t + pad) // k, k * m)  # (B, T', k*M): frame-major in a token

    def tokens_to_mel(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L, k M] -> log-mel [B, M, L k] (exact inverse of `mel_to_tokens` up to padding)."""
        b, length, d = tokens.shape
        if d != self.token_dim:
            raise ValueError(f"expected tokens of {self.token_dim} channels, got {d}")
        x = tokens.float().reshape(b, length * self.frames_per_token, self.cfg.n_mels).transpose(1, 2)
        return x / self.scale + self.shift

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [B, N] -> tokens [B, ceil(floor(N / hop) / k), k M]."""
        return self.mel_to_tokens(self.mel(audio))

    def vocode(self, log_mel: torch.Tensor, iters: int = 32, momentum: float = 0.99, power: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mel [B, M, T] -> audio [B, T hop] by NNLS mel inversion and fast Griffin-Lim.

        `power` > 1 sharpens the magnitude before phase recovery (|S|^power, as Tacotron's 1.5)."""
        mag = self.spectral.mel_to_linear(log_mel)
        if power != 1.0:
            mag = mag.pow(power)
        return self.spectral.griffin_lim(mag, iters=iters, momentum=momentum, generator=generator)

    def decode(self, tokens: torch.Tensor, iters: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
        """Tokens [B, L, k M] -> audio [B, L k hop] in about [-1, 1] (not clipped)."""
        return self.vocode(self.tokens_to_mel(tokens), iters=iters, generator=generator)
