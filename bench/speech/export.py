"""fp16 export of a trained voice (length model kept fp32), as the shipped asset is made; the sampling
settings become the preset's (the run's checkpoint carries the config it was trained with)."""
import dataclasses
import sys

import torch
from safetensors import safe_open

from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, load_speech_generator, save_speech_generator

src, dst = sys.argv[1], sys.argv[2]
gen = load_speech_generator(src)
with safe_open(src, framework="pt") as f:
    steps = (f.metadata() or {}).get("steps", "")
config = dataclasses.replace(gen.config, sampling=SPEECH_PRESETS[gen.config.name].sampling)
assert dataclasses.replace(config, sampling=gen.config.sampling) == gen.config
save_speech_generator(dst, SpeechGenerator(config, gen.model), {"steps": steps}, dtype=torch.float16)
print("wrote", dst, "steps", steps, "sampling", config.sampling)
