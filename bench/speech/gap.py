"""Text-use diagnostic: denoise loss on fixed training batches with the true text vs the texts of other rows.
usage: python gap.py CKPT [CKPT ...]   (eval mode: no text drop; same masks/noise for every variant)"""
import sys
from pathlib import Path

import torch

from djepa_core.models.tts import SpeechBatch
from djepa_core.speech_pipeline import load_speech_generator
from djepa_core.speech_train import load_examples

torch.set_num_threads(1)
for ckpt in sys.argv[1:]:
    gen = load_speech_generator(ckpt)
    ex = load_examples("/tmp/speech5k", gen.config, cache=Path("runs/speech/feat5k.pt"))
    m = gen.model.eval()
    g = torch.Generator().manual_seed(123)
    res = {"true": [], "true_pred": [], "other": []}
    with torch.no_grad():
        for b in range(8):
            idx = torch.randint(0, len(ex), (16,), generator=g).tolist()
            batch = ex.batch(idx, "cpu", min(ex.max_tokens, -(-max(ex.tokens[i].shape[0] for i in idx) // 16) * 16))
            variants = {"true": batch,
                        "true_pred": SpeechBatch(batch.tokens, batch.lengths, batch.text, frames=batch.frames),
                        "other": SpeechBatch(batch.tokens, batch.lengths, batch.text.roll(1, 0), frames=batch.frames)}
            for k, v in variants.items():
                torch.manual_seed(1000 + b)
                out = m.loss(v, generator=torch.Generator().manual_seed(1000 + b))
                res[k].append(float(out.denoise))
    print(ckpt, {k: round(sum(v) / len(v), 4) for k, v in res.items()}, flush=True)
