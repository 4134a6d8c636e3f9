"""The embedded default voice: it loads, its report is there, and it speaks a sentence of plausible length."""

from __future__ import annotations

import json

import torch

from djepa_core.assets import ASSETS
from djepa_core.speech_pipeline import default_speech_checkpoint, load_speech_generator


def test_default_voice_loads_and_speaks(one_thread: None) -> None:
    path = default_speech_checkpoint()
    assert path is not None, "djepa_core/assets/default_speech.safetensors is missing"
    assert path.stat().st_size < 8 * 2**20  # shipped small (fp16 weights)
    report = json.loads((ASSETS / "default_speech.json").read_text())
    assert report["checkpoint"].endswith("default_speech.safetensors") and "eval" in report
    gen = load_speech_generator(path)
    assert next(gen.model.parameters()).dtype == torch.float32  # fp16 on disk, fp32 in memory
    text = "The careful teacher said that the garden was quiet."
    predicted = float(gen.model.length_model(gen.encode_texts([text])).detach()[0]) * 256 / gen.sample_rate
    audio = gen.generate([text], seeds=[0], settings=gen.settings(num_steps=4, head_steps=4), vocoder_iters=4)[0]
    seconds = audio.numel() / gen.sample_rate
    assert seconds > 0.3 and abs(seconds - predicted) <= 0.3 * predicted
    assert torch.isfinite(audio).all() and float(audio.abs().max()) > 1e-3  # not silence
    fast = gen.generate([text], seeds=[0], settings=gen.settings(num_steps=2, head_steps=2), speed=2.0,
                        vocoder_iters=2)[0]
    assert abs(fast.numel() / audio.numel() - 0.5) < 0.05
