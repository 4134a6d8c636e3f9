"""Refit the frozen duration model of a trained measured-alignment voice longer (it is separate from the network)."""
import sys
import time
from pathlib import Path

import torch

from djepa_core.speech_pipeline import load_speech_generator, save_speech_generator
from djepa_core.speech_train import load_examples

torch.set_num_threads(1)
src, dst, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
gen = load_speech_generator(src)
ex = load_examples("/tmp/speech5k", gen.config, cache=Path("runs/speech/feat5k.pt"))
ids, dur = ex.padded_durations()
t = time.time()
err = gen.model.duration_model.fit(ids, dur, steps=steps, seed=0)
print(f"duration model refit: {steps} steps, mean abs error {err:.3f} frames per symbol, {time.time() - t:.0f} s",
      flush=True)
save_speech_generator(dst, gen, {"steps": "1908", "duration_fit_steps": str(steps)})
