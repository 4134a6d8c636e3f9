"""The speech tokenizer: filterbank, STFT round trip, mel tokens, Griffin-Lim vocoder, WAV I/O, resampling."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from djepa_core.audio_io import read_wav, resample, write_wav
from djepa_core.tokenizers.audio import (
    LOG_FLOOR,
    MelConfig,
    MelTokenizer,
    Spectral,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    spectral_convergence,
)

SR = 22050


def speechlike(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A voiced, gliding harmonic signal with an amplitude envelope and a little noise: [N] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    n = int(SR * seconds)
    t = torch.arange(n, dtype=torch.float64) / SR
    f0 = 120 + 40 * torch.sin(2 * math.pi * 1.5 * t)  # pitch glide
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    x = sum(torch.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 * (1 - torch.cos(2 * math.pi * 3 * t)) * (t < seconds * 0.9)
    x = x * env + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    return (0.5 * x / x.abs().max()).float()


def test_slaney_mel_scale_and_filterbank() -> None:
    assert float(hz_to_mel(torch.tensor(1000.0))) == pytest.approx(15.0)
    assert float(hz_to_mel(torch.tensor(500.0))) == pytest.approx(7.5)
    assert float(hz_to_mel(torch.tensor(8000.0))) == pytest.approx(15 + 27 * math.log(8) / math.log(6.4))
    f = torch.tensor([0.0, 300.0, 999.0, 1000.0, 4321.0, 11025.0])
    assert torch.allclose(mel_to_hz(hz_to_mel(f)), f.double(), atol=1e-6)
    cfg = MelConfig()
    fb = mel_filterbank(cfg)
    assert fb.shape == (80, 513) and fb.min() >= 0
    assert (fb.sum(1) > 0).all()  # every band sees at least one FFT bin
    freqs = torch.linspace(0, SR / 2, 513)
    assert fb[:, freqs > 8000 + 1e-3].abs().max() == 0  # nothing above fmax
    peaks = fb.argmax(1)
    assert (peaks[1:] >= peaks[:-1]).all()
    # Slaney normalisation: each triangle has unit area in Hz (checked where a band spans many bins)
    area = fb.sum(1) * (SR / cfg.n_fft)
    assert torch.allclose(area[30:], torch.ones(50), rtol=0.05)


def test_stft_frames_and_exact_inverse() -> None:
    sp = Spectral()
    x = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0)) * 0.1
    spec = sp.stft(x)
    assert spec.shape == (2, 513, 5000 // 256)
    y = sp.istft(spec, 5000)
    assert torch.allclose(y, x, atol=1e-5)
    assert sp.mel(x).shape == (2, 80, 19)


def test_mel_of_a_tone_peaks_at_its_band() -> None:
    sp = Spectral()
    t = torch.arange(SR) / SR
    mel = sp.mel(torch.sin(2 * math.pi * 1000 * t)[None])[0]  # (80, T)
    band = int(mel.mean(1).argmax())
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(8000.0))), 82))[1:-1]
    assert abs(float(centres[band]) - 1000) < 60
    assert float(mel.min()) >= math.log(LOG_FLOOR) - 1e-6


def test_tokens_and_mel_round_trip_exactly() -> None:
    tok = MelTokenizer(frames_per_token=4)
    x = speechlike(0.7)
    mel = tok.mel(x[None])  # (1, 80, 60)
    tokens = tok.encode(x[None])
    assert tokens.shape == (1, math.ceil(mel.shape[-1] / 4), 320) == (1, tok.num_tokens(x.numel()), tok.token_dim)
    back = tok.tokens_to_mel(tokens)
    assert torch.allclose(back[..., : mel.shape[-1]], mel, atol=1e-5)
    assert torch.allclose(back[..., mel.shape[-1]:], torch.full_like(back[..., mel.shape[-1]:], math.log(LOG_FLOOR)),
                          atol=1e-5)  # padded with silence
    assert torch.allclose(tok.mel_to_tokens(back), tokens, atol=1e-6)
    # token j holds frames 4j..4j+3, each 80 mels (frame-major inside a token)
    scaled = (mel - tok.shift) * tok.scale
    assert torch.allclose(tokens[0, 2, 80:160], scaled[0, :, 9])
    assert tok.silence_token_value == pytest.approx((math.log(LOG_FLOOR) + 5.4) * 0.35)


def test_griffin_lim_with_momentum_recovers_a_consistent_spectrogram(one_thread: None) -> None:
    sp = Spectral()
    x = speechlike(1.0)[None]
    mag = sp.magnitude(x)
    g = torch.Generator().manual_seed(0)
    fast = sp.griffin_lim(mag, iters=32, momentum=0.99, generator=g, length=x.shape[1])
    plain = sp.griffin_lim(mag, iters=32, momentum=0.0, generator=torch.Generator().manual_seed(0),
                           length=x.shape[1])
    sc_fast = spectral_convergence(sp.magnitude(fast), mag)
    sc_plain = spectral_convergence(sp.magnitude(plain), mag)
    assert sc_fast < 0.15 and sc_fast < sc_plain
    again = sp.griffin_lim(mag, iters=32, momentum=0.99, generator=torch.Generator().manual_seed(0),
                           length=x.shape[1])
    assert torch.equal(fast, again)  # seeded


def test_vocoder_round_trip_keeps_the_mel(one_thread: None) -> None:
    tok = MelTokenizer()
    x = speechlike(1.0)[None]
    mel = tok.mel(x)
    lin = tok.spectral.mel_to_linear(mel)
    assert lin.min() >= 0
    # the NNLS inversion reproduces the mel closely wherever there is energy
    remel = torch.log(torch.matmul(tok.spectral.mel_basis, lin).clamp(min=LOG_FLOOR))
    loud = mel > -6
    assert (remel - mel)[loud].abs().mean() < 0.05
    audio = tok.decode(tok.mel_to_tokens(mel), iters=32)
    assert audio.shape == (1, tok.num_tokens(x.shape[1]) * tok.samples_per_token)
    assert audio.abs().max() < 2
    mel2 = tok.mel(audio)[..., : mel.shape[-1]]
    assert (mel2 - mel)[loud].abs().mean() < 0.35


def test_wav_write_read_and_other_widths(tmp_path: Path) -> None:
    x = speechlike(0.2)
    write_wav(tmp_path / "a.wav", x, SR)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == SR and y.shape == x.shape and (y - x).abs().max() < 1.0 / 32767 + 1e-6
    pcm = (x.numpy() * 0.9)
    for width, data in ((1, (pcm * 127 + 128).astype(np.uint8).tobytes()),
                        (4, (pcm * 2**31).astype("<i4").tobytes())):
        with wave.open(str(tmp_path / f"w{width}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(width)
            w.setframerate(16000)
            w.writeframes(data)
        z, rate = read_wav(tmp_path / f"w{width}.wav")
        assert rate == 16000 and (z - torch.from_numpy(pcm)).abs().max() < (0.02 if width == 1 else 1e-6)
    # 24-bit stereo: the channels are averaged
    v = (np.stack([pcm, -pcm * 0.5], 1) * (2**23 - 1)).astype(np.int32).reshape(-1)
    raw = np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], 1).astype(np.uint8).tobytes()
    with wave.open(str(tmp_path / "s24.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(SR)
        w.writeframes(raw)
    z, _ = read_wav(tmp_path / "s24.wav")
    assert (z - torch.from_numpy(pcm * 0.25)).abs().max() < 1e-5
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(ValueError, match=r"bad\.wav"):
        read_wav(tmp_path / "bad.wav")


@pytest.mark.parametrize(("orig", "new"), [(16000, 22050), (44100, 22050), (22050, 16000)])
def test_resample_a_tone(orig: int, new: int) -> None:
    f = 440.0
    n = orig // 2
    x = torch.sin(2 * math.pi * f * torch.arange(n, dtype=torch.float64) / orig).float()
    y = resample(x, orig, new)
    assert y.shape == (math.ceil(n * new / orig),)
    ref = torch.sin(2 * math.pi * f * torch.arange(y.numel(), dtype=torch.float64) / new).float()
    edge = new // 50  # the ends see zero padding
    assert (y - ref)[edge:-edge].abs().max() < 2e-3
    assert torch.equal(resample(x, orig, orig), x)
    # above the new Nyquist rate nothing passes
    if new < orig:
        hi = torch.sin(2 * math.pi * (new * 0.6) * torch.arange(n, dtype=torch.float64) / orig).float()
        assert resample(hi, orig, new)[edge:-edge].abs().max() < 0.01
