"""The speech engine: a text-to-speech model on one device, speaking many requests' texts per call.

No Ray, FastAPI or gRPC here (design.md), as engine.py for images: the speech deployment wraps a
`TorchSpeechEngine`. `generate` runs one forward pass per group of items with the same `speed` (the
length model takes one speed per pass); texts of different lengths share a pass, each row padded to its
own length by the sampler (samplers/speech.py), and every waveform comes from its own seed
(`PerSampleNoise`, a seeded vocoder), so an answer does not depend on its batch-mates. Each waveform
is quantized once to 16-bit PCM and encoded to its item's format here: WAV (stdlib `wave`), FLAC
(`soundfile`, lossless: the same samples) or raw little-endian PCM.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from djepa_core.assets import ASSETS
from djepa_core.audio_io import wav_bytes_pcm16
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, load_speech_generator
from service.batching import SPEECH_FORMATS, run_in_groups
from service.config import EngineConfig, SpeechConfig
from service.types import BatchStats, ModelInfo, SpeechItem, SpeechOutput

DEFAULT_SPEECH = ASSETS / "default_speech.safetensors"  # the embedded default voice (absent until trained)


def media_type(fmt: str, sample_rate: int) -> str:
    """The content type of an answer: raw PCM says its rate (16-bit little-endian mono; not audio/L16,
    which is big-endian)."""
    return {"wav": "audio/wav", "flac": "audio/flac"}.get(fmt, f"audio/pcm;rate={sample_rate}")


def encode_audio(pcm16: bytes, sample_rate: int, fmt: str) -> bytes:
    """16-bit little-endian mono samples -> the bytes of `fmt` ("wav", "flac" or "pcm")."""
    if fmt == "pcm":
        return pcm16
    buf = io.BytesIO()
    if fmt == "wav":
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm16)
    elif fmt == "flac":
        import soundfile  # the serve extra: libsndfile ships inside its wheel

        soundfile.write(buf, np.frombuffer(pcm16, dtype="<i2"), sample_rate, format="FLAC", subtype="PCM_16")
    else:
        raise ValueError(f"unknown audio format {fmt!r}; formats are {', '.join(SPEECH_FORMATS)}")
    return buf.getvalue()


def load_speech_bundle(config: EngineConfig, default: Path = DEFAULT_SPEECH) -> tuple[SpeechGenerator, str]:
    """The speech generator `config` names, on its device, and where it came from. With neither a
    checkpoint nor a preset: the embedded default voice `default`, or FileNotFoundError while this build
    ships none (the deployment then stays not ready, with this reason)."""
    device = torch.device(config.device)
    if config.reference is not None:
        raise ValueError("speech: reference checkpoints are image models; give a djepa speech checkpoint")
    if config.checkpoint is not None:
        return load_speech_generator(config.checkpoint, device=device), f"checkpoint {config.checkpoint}"
    if config.preset is not None:
        if config.preset not in SPEECH_PRESETS:
            raise ValueError(f"unknown speech preset {config.preset!r}; presets are {sorted(SPEECH_PRESETS)}")
        gen = SpeechGenerator.from_config(SPEECH_PRESETS[config.preset], seed=config.init_seed).to(device)
        return gen, f"preset {config.preset} (untrained, init seed {config.init_seed})"
    if not default.is_file():
        raise FileNotFoundError(f"the embedded default voice ({default.name}) is not in this build yet; "
                                "give speech.engine.checkpoint")
    return load_speech_generator(default, device=device), f"embedded default voice {default.name}"


class TorchSpeechEngine:
    """Speech over a djepa `SpeechGenerator`: items in, encoded audio out."""

    def __init__(self, generator: SpeechGenerator, config: SpeechConfig | None = None, source: str = "") -> None:
        self.config = config or SpeechConfig()
        engine = self.config.engine
        self.generator = generator
        self.source = source
        self.settings = generator.settings(num_steps=engine.num_steps, cfg_scale=engine.cfg_scale,
                                           temperature=engine.temperature, head_steps=engine.head_steps)
        cfg = generator.config
        defaults: dict[str, Any] = {"num_steps": self.settings.num_steps, "cfg_scale": self.settings.cfg_scale,
                                    "temperature": self.settings.temperature,
                                    "head_steps": self.settings.head_steps or cfg.model.sampling_steps,
                                    "speed": 1.0, "response_format": SPEECH_FORMATS[0], "voice": self.config.voice}
        self._info = ModelInfo(
            id=engine.name or cfg.name, modality="speech", classes=(), width=0, height=0, channels=1,
            defaults=defaults, max_num_steps=engine.max_num_steps, formats=SPEECH_FORMATS,
            sample_rate=generator.sample_rate, max_text_chars=self.config.max_text_chars, voices=(self.config.voice,))

    @classmethod
    def load(cls, config: SpeechConfig) -> TorchSpeechEngine:
        if config.engine.threads is not None:
            torch.set_num_threads(config.engine.threads)
        generator, source = load_speech_bundle(config.engine)
        # the text front end once: a voice on espeak-ng's phonemes fails here, with the reason on /readyz,
        # where espeak-ng is missing (not at its first request)
        generator.encode_texts(["Ready."])
        return cls(generator, config, source)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def refusal(self, item: SpeechItem) -> str | None:
        """Why the model cannot speak `item` (nothing left after normalization, more symbols than it takes,
        longer than its slots at this speed: the model's own message), or None. Cheap: no sampling."""
        try:
            self.generator.frames(self.generator.encode_texts([item.text]), item.speed)
        except ValueError as e:
            return str(e)
        return None

    def encode(self, audio: torch.Tensor, item: SpeechItem) -> SpeechOutput:
        """One waveform (float, clipped to [-1, 1]) -> the item's audio format."""
        pcm16 = wav_bytes_pcm16(audio)
        rate = self.generator.sample_rate
        return SpeechOutput(encode_audio(pcm16, rate, item.response_format), media_type(item.response_format, rate),
                            item.seed, rate, len(pcm16) // 2)

    def generate(self, items: Sequence[SpeechItem]) -> list[tuple[SpeechOutput, BatchStats]]:
        """One output per item, in order, with the forward pass it came from (queue_wait_s = 0)."""

        def speak(group: list[int]) -> list[SpeechOutput]:
            waves = self.generator.generate([items[i].text for i in group], seeds=[items[i].seed for i in group],
                                            settings=self.settings, speed=items[group[0]].speed,
                                            vocoder_iters=self.config.vocoder_iters)
            return [self.encode(w, items[i]) for w, i in zip(waves, group, strict=True)]

        return run_in_groups(items, speak)
