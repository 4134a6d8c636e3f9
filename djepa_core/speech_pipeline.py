"""The text-to-speech generator: text in, 22,050 Hz audio out (D-JEPA over mel tokens + Griffin-Lim).

`SpeechGenerator.generate` normalizes each text, maps it to symbols, predicts its length with the length
model (divided by `speed`), samples mel tokens with the masked-AR loop (guidance on the text), and
vocodes each row's mel, cut to its predicted length. Checkpoints: one safetensors file, tensors
`model.*`, header `format` = "djepa-speech/1" and `config` = the :class:`TTSConfig` as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from djepa_core.config import ModelConfig, SamplingConfig
from djepa_core.models.tts import SpeechConfig, TextToSpeechDJEPA, tts_model_config
from djepa_core.samplers.masked_ar import SampleSettings, settings_from_config
from djepa_core.samplers.noise import GeneratorNoise, NoiseSource, PerSampleNoise
from djepa_core.samplers.speech import sample_speech_tokens
from djepa_core.text import normalize, text_to_ids

FORMAT = "djepa-speech/1"
PEAK = 0.99  # generated audio is scaled down to this peak when louder (PCM would clip)


@dataclass(frozen=True)
class TTSConfig:
    model: ModelConfig
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(num_steps=32, cfg_scale=2.0,
                                                                            temperature=1.0))
    name: str = "djepa-speech"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model.to_dict(), "speech": self.speech.to_dict(),
                "sampling": self.sampling.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TTSConfig:
        unknown = sorted(set(data) - {"name", "model", "speech", "sampling"})
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are ['model', 'name', 'sampling', 'speech']")
        return cls(model=ModelConfig.from_dict(data.get("model", {})),
                   speech=SpeechConfig.from_dict(data.get("speech", {})),
                   sampling=SamplingConfig.from_dict(data.get("sampling", {})), name=str(data.get("name", "")))


def _preset(name: str, max_tokens: int, width: int, depth: int, heads: int, head_depth: int, head_width: int,
            max_text: int, num_buffer: int, steps: int, head_steps: int, **extra: Any) -> TTSConfig:
    speech = SpeechConfig(max_text=max_text, num_buffer=num_buffer)
    model = tts_model_config(speech, max_tokens, width, depth, heads, head_depth, head_width, "flow", **extra)
    return TTSConfig(model, speech, SamplingConfig(num_steps=steps, cfg_scale=2.0, temperature=1.0,
                                                   head_steps=head_steps), name=name)


def with_speech(config: TTSConfig, name: str | None = None, **changes: Any) -> TTSConfig:
    """`config` with SpeechConfig fields changed (e.g. local_text=True); the backbone's prefix follows."""
    speech = dataclasses.replace(config.speech, **changes)
    model = dataclasses.replace(config.model, buffer_size=speech.prefix_len)
    return dataclasses.replace(config, model=model, speech=speech, name=name or config.name)


# ours (no reference exists for speech): ~370 tokens = 17 s of audio, 192 characters of text
SPEECH_PRESETS: dict[str, TTSConfig] = {
    "djepa-speech-s": _preset("djepa-speech-s", 372, 256, 6, 8, 3, 512, 192, 8, 32, 24, diffusion_batch_mul=2),
    "djepa-speech-xs": _preset("djepa-speech-xs", 372, 128, 3, 4, 2, 256, 192, 8, 24, 16, diffusion_batch_mul=2),
    "djepa-speech-tiny": _preset("djepa-speech-tiny", 64, 32, 1, 2, 1, 32, 48, 2, 4, 4, diffusion_batch_mul=1),
}
# the same with the per-slot local text condition (models/tts.py), with and without the text rows in the prefix
for _base in ("djepa-speech-xs", "djepa-speech-tiny"):
    SPEECH_PRESETS[f"{_base}-local"] = with_speech(SPEECH_PRESETS[_base], f"{_base}-local", local_text=True)
    SPEECH_PRESETS[f"{_base}-local-np"] = with_speech(SPEECH_PRESETS[_base], f"{_base}-local-np", local_text=True,
                                                      text_prefix=False)
# local-only conditioning on the MEASURED alignment (espeak-ng word timings in training, a duration model at
# sampling); sampled at flow temperature 0.01 (the initial noise scaled down: bench/train_speech.md, v3)
for _base in ("djepa-speech-xs", "djepa-speech-tiny"):
    _aligned = with_speech(SPEECH_PRESETS[_base], f"{_base}-aligned", local_text=True, text_prefix=False,
                           alignment="measured")
    SPEECH_PRESETS[f"{_base}-aligned"] = dataclasses.replace(
        _aligned, sampling=dataclasses.replace(_aligned.sampling, temperature=0.01))
# the same on PHONEME symbols with the measured phoneme-level alignment: the symbols and their durations from
# espeak-ng's phoneme events (phonemes.csv in training; the library speaks the text at sampling to get them);
# sampled without guidance (cfg 1.0: guidance made this voice less intelligible, bench/train_speech.md, v4)
for _base in ("djepa-speech-xs", "djepa-speech-tiny"):
    _phon = with_speech(SPEECH_PRESETS[f"{_base}-aligned"], f"{_base}-phonemes", symbols="phoneme-events")
    SPEECH_PRESETS[f"{_base}-phonemes"] = dataclasses.replace(
        _phon, sampling=dataclasses.replace(_phon.sampling, cfg_scale=1.0))


class TemperedNoise:
    """A noise source whose Gaussian draws are scaled by `temperature` (orders unchanged): the temperature of
    a FLOW head, whose ODE is deterministic from its initial noise (the flow sampler itself takes no
    temperature). Speech needs it: at temperature 1 every token is an independent draw from a broad
    per-token distribution, which sounds like noise to a recognizer (bench/train_speech.md)."""

    def __init__(self, inner: NoiseSource, temperature: float) -> None:
        self.inner, self.temperature = inner, temperature

    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None, *,
               device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.inner.normal(shape, segments, device=device, dtype=dtype) * self.temperature

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        return self.inner.orders(batch, seq_len, device)


class SpeechGenerator:
    def __init__(self, config: TTSConfig, model: TextToSpeechDJEPA) -> None:
        self.config = config
        self.model = model.eval()
        self.tokenizer = config.speech.tokenizer()

    @classmethod
    def from_config(cls, config: TTSConfig, seed: int = 0) -> SpeechGenerator:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = TextToSpeechDJEPA(config.model, config.speech)
        return cls(config, model)

    @property
    def sample_rate(self) -> int:
        return self.tokenizer.cfg.sample_rate

    @property
    def device(self) -> torch.device:
        return self.model.fake_latent.device

    def to(self, device: torch.device | str) -> SpeechGenerator:
        self.model.to(device)
        self.tokenizer.to(device)
        return self

    def settings(self, **overrides: Any) -> SampleSettings:
        return settings_from_config(self.config.sampling, **overrides)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Raw texts -> symbol ids [B, T] (0-padded); errors name the text's index."""
        rows = []
        for i, t in enumerate(texts):
            ids = text_to_ids(normalize(t), self.config.speech.symbols, normalized=True)
            if not ids:
                raise ValueError(f"text {i} has nothing to say after normalization: {t!r}")
            if len(ids) > self.config.speech.max_text:
                raise ValueError(f"text {i} has {len(ids)} symbols after normalization; the model takes at most "
                                 f"{self.config.speech.max_text}")
            rows.append(ids)
        out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out

    def frames(self, text: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
        """Predicted mel frames [B] (int64) of symbol ids [B, T]; errors when it exceeds the model's slots."""
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        with torch.no_grad():
            frames = self.model.length_model(text.to(self.device), speed).round().long()
        k, slots = self.config.speech.frames_per_token, self.config.model.seq_len
        too_long = (frames > k * slots).nonzero().flatten().tolist()
        if too_long:
            seconds = k * slots * self.tokenizer.cfg.hop / self.sample_rate
            raise ValueError(f"text {too_long[0]} would last longer than the model's {k * slots} mel frames "
                             f"({seconds:.1f} s); shorten it or raise speed")
        return frames

    @torch.no_grad()
    def generate(self, texts: Sequence[str], *, seeds: Sequence[int] | None = None, seed: int | None = None,
                 settings: SampleSettings | None = None, noise: NoiseSource | None = None, speed: float = 1.0,
                 vocoder_iters: int = 32) -> list[torch.Tensor]:
        """One mono waveform [N_i] (float, within [-PEAK, PEAK]: louder rows are scaled down) at `sample_rate`
        per text."""
        if not texts:
            raise ValueError("need at least one text")
        text = self.encode_texts(texts).to(self.device)
        frames = self.frames(text, speed)
        k = self.config.speech.frames_per_token
        lengths = (frames + k - 1) // k
        if noise is None:
            if seeds is not None:
                if len(seeds) != len(texts):
                    raise ValueError(f"{len(seeds)} seeds for {len(texts)} texts")
                noise = PerSampleNoise(seeds, device="cpu")
            else:
                noise = GeneratorNoise(seed=0 if seed is None else seed)
        settings = settings or self.settings()
        if self.config.model.head == "flow" and settings.temperature != 1.0:
            noise = TemperedNoise(noise, settings.temperature)  # (a Gaussian head applies it itself)
        tokens = sample_speech_tokens(self.model, text, lengths, noise, settings, frames=frames)
        mel = self.tokenizer.tokens_to_mel(tokens)  # (B, 80, L k)
        out = []
        for i, n in enumerate(frames.tolist()):
            g = torch.Generator().manual_seed(seeds[i] if seeds is not None else (seed or 0))
            audio = self.tokenizer.vocode(mel[i: i + 1, :, :n], iters=vocoder_iters, generator=g)[0]
            peak = float(audio.abs().max()) if audio.numel() else 0.0
            out.append(audio * (PEAK / peak) if peak > PEAK else audio)  # never clips when written as PCM
        return out


def default_speech_checkpoint() -> Path | None:
    """The embedded default voice (`djepa_core/assets/default_speech.safetensors`), or None when absent."""
    from djepa_core.assets import ASSETS

    path = ASSETS / "default_speech.safetensors"
    return path if path.is_file() else None


def print_speech_presets() -> None:
    """One line per speech preset (for `djepa presets`); the embedded default voice's preset is marked."""
    default = default_speech_checkpoint()
    default_name = None
    if default is not None:
        with safe_open(str(default), framework="pt") as f:
            default_name = json.loads((f.metadata() or {}).get("config", "{}")).get("name")
    for name, cfg in SPEECH_PRESETS.items():
        m, sp = cfg.model, cfg.speech
        with torch.device("meta"):
            n = sum(p.numel() for p in TextToSpeechDJEPA(m, sp).parameters())
        text = "+".join(k for k, on in (("prefix", sp.text_prefix), ("local", sp.local_text)) if on)
        mark = "  (embedded default voice)" if name == default_name else ""
        print(f"{name:<14} {n / 1e6:9.2f}M params  width {m.encoder_dim} depth {m.encoder_depth}/{m.decoder_depth} "
              f"heads {m.encoder_heads}  head {m.head} {m.head_depth}x{m.head_width}  tokens ({m.seq_len},)x"
              f"{m.token_dim} (mel, {sp.frames_per_token} frames)  text {sp.symbols} <= {sp.max_text} "
              f"({text}){mark}")


def save_speech_generator(path: str | Path, gen: SpeechGenerator, extra_metadata: dict[str, str] | None = None,
                          dtype: torch.dtype | None = None) -> Path:
    """Write `gen` as one safetensors file; `dtype` (e.g. torch.float16) stores the network's floating
    tensors smaller (the loader casts them back to float32); the length model stays float32 (durations)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def stored(name: str, v: torch.Tensor) -> torch.Tensor:
        cast = dtype is not None and v.is_floating_point() and not name.startswith("length_model.")
        return (v.to(dtype) if cast else v).detach().cpu().contiguous()

    tensors = {f"model.{k}": stored(k, v) for k, v in gen.model.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(gen.config.to_dict())}
    meta.update(extra_metadata or {})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # a model file, readable by the serving user
    tmp.replace(path)
    return path


def load_speech_generator(path: str | Path, device: torch.device | str = "cpu") -> SpeechGenerator:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a djepa speech checkpoint (format {meta.get('format')!r})")
        state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}  # noqa: SIM118
    config = TTSConfig.from_dict(json.loads(meta["config"]))
    gen = SpeechGenerator.from_config(config)
    gen.model.load_state_dict(state, strict=True)
    return gen.to(device)
