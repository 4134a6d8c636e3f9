"""Training checkpoint -> servable generator file (EMA weights, resolved config, sampling defaults)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from djepa_core.checkpoint import save_generator
from djepa_core.config import GeneratorConfig, SamplingConfig
from djepa_core.models.djepa import DJEPA
from djepa_core.pipeline import ImageGenerator
from djepa_core.tokenizers.factory import build_any_tokenizer
from djepa_core.tokenizers.video import VideoPatchTokenizer
from djepa_core.trainers import state as ckpt
from djepa_core.trainers.loop import load_tokenizer_weights


def export_checkpoint(path: str | Path, out: str | Path, sampling: dict[str, Any] | None = None,
                      name: str | None = None, half: bool = False) -> Path:
    """Write a training checkpoint's EMA weights as a djepa generator file; the model is rebuilt from the
    checkpoint alone. `sampling` overrides fields of the stored SamplingConfig (tuned defaults); `half` stores the
    weights as float16 (shipped assets)."""
    state = ckpt.load_checkpoint(path)
    gen_config = GeneratorConfig.from_dict(state["generator_config"])
    if sampling:
        merged = {**gen_config.sampling.to_dict(), **sampling}
        gen_config = dataclasses.replace(gen_config, sampling=SamplingConfig.from_dict(merged))
    if name:
        gen_config = dataclasses.replace(gen_config, name=name)
    model = DJEPA(gen_config.model)
    model.load_state_dict(state["ema"])
    tokenizer = build_any_tokenizer(gen_config.tokenizer)
    tok_ckpt = state["config"].get("tokenizer_checkpoint", "")
    if tok_ckpt:
        load_tokenizer_weights(tokenizer, tok_ckpt)
    gen: Any
    if isinstance(tokenizer, VideoPatchTokenizer):
        from djepa_core.video_pipeline import VideoGenerator

        gen = VideoGenerator(gen_config, model, tokenizer)
    else:
        gen = ImageGenerator(gen_config, model, tokenizer)
    return save_generator(out, gen, {"train_step": str(state["step"]), "train_config": json.dumps(state["config"])},
                          half=half)
