"""WAV files and resampling with the standard library, numpy and torch (no torchaudio, no soundfile).

`read_wav` reads uncompressed PCM WAV (8-bit unsigned, 16/24/32-bit signed; what LJSpeech-1.1 and
espeak-ng write) as float32 in [-1, 1], channels averaged to mono. `write_wav` writes 16-bit PCM.
`resample` is a band-limited polyphase resampler: a Hann-windowed sinc low-pass at the lower of the
two Nyquist rates, one kernel per output phase, applied by a strided convolution.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def read_wav(path: str | Path) -> tuple[torch.Tensor, int]:
    """(audio [N] float32 in [-1, 1], sample rate) of a PCM WAV file; stereo is averaged to mono."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except wave.Error as e:  # e.g. IEEE-float or compressed WAV: name the file and what we read
        raise ValueError(f"{path}: not a PCM WAV file the standard library reads ({e})") from None
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:  # 24-bit little endian: sign-extend through the top byte of an int32
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {width} bytes")
    x = x.reshape(-1, channels).mean(axis=1) if channels > 1 else x
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(rate)


def write_wav(path: str | Path, audio: torch.Tensor, sample_rate: int) -> None:
    """Write mono audio [N] (float, clipped to [-1, 1]) as 16-bit PCM."""
    pcm = wav_bytes_pcm16(audio)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm)


def wav_bytes_pcm16(audio: torch.Tensor) -> bytes:
    """Mono audio [N] -> little-endian 16-bit PCM bytes (clipped, rounded)."""
    if audio.dim() != 1:
        raise ValueError(f"expected mono audio [N], got {tuple(audio.shape)}")
    x = audio.detach().float().cpu().clamp(-1.0, 1.0).numpy()
    return np.round(x * 32767.0).astype("<i2").tobytes()


def _sinc_kernels(orig: int, new: int, width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Kernels [new, 1, K] (one per output phase) and the half width in input samples."""
    base = min(orig, new) * rolloff  # cutoff in units of the reduced rates
    half = math.ceil(width * orig / base)
    idx = torch.arange(-half, half + orig, dtype=torch.float64) / orig  # input offsets, in input periods / orig
    phase = -torch.arange(new, dtype=torch.float64)[:, None] / new  # output phase j sits at j/new periods
    t = (phase + idx[None, :]) * base  # (new, K) time in cutoff periods
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t * math.pi) / (t * math.pi))
    kernel = kernel * window * (base / orig)
    return kernel.float().unsqueeze(1), half


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int, width: int = 16,
             rolloff: float = 0.95) -> torch.Tensor:
    """Resample [..., N] from `orig_rate` to `new_rate`: ceil(N * new / orig) samples.

    Band-limited: a sinc low-pass at `rolloff` x the lower Nyquist rate, `width` zero crossings
    each side, Hann window.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    if orig_rate == new_rate:
        return audio
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    kernels, half = _sinc_kernels(orig, new, width, rolloff)
    shape = audio.shape
    x = audio.reshape(-1, 1, shape[-1]).float()
    n = shape[-1]
    x = F.pad(x, (half, half + orig))
    y = F.conv1d(x, kernels.to(x.device), stride=orig)  # (B, new, frames): phase j of each input block
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # interleave the phases
    out_len = math.ceil(new * n / orig)
    return y[:, :out_len].reshape(*shape[:-1], out_len)
