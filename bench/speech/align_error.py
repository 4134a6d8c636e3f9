"""How far each alignment places the text from the measured one, on held-out utterances.
usage: python align_error.py CKPT (a measured-alignment checkpoint: its duration model and length model; a
phoneme-event voice is measured against phonemes.csv, a character voice against alignments.csv)"""
import sys

import torch

from djepa_core.data.espeak_align import read_alignments, read_phoneme_alignments
from djepa_core.data.ljspeech import LJSpeech
from djepa_core.data.speech_batches import measured_durations, phoneme_frames
from djepa_core.data.speech_corpus import normalize  # noqa: F401
from djepa_core.models.durations import proportional_alignment
from djepa_core.speech_pipeline import load_speech_generator
from djepa_core.text import PHONEMES, text_to_ids

torch.set_num_threads(1)
gen = load_speech_generator(sys.argv[1])
m = gen.model
ds = LJSpeech("/tmp/speech5k", "test", check_files=False)
al = read_alignments("/tmp/speech5k")
phon = read_phoneme_alignments("/tmp/speech5k") if gen.config.speech.symbols == "phoneme-events" else {}
k = 4
errs = {"proportional": [], "predicted": []}
with torch.no_grad():
    for it in ds.items[:200]:
        a = al[it.id]
        frames = a.samples // 256
        if phon:
            ids = PHONEMES.encode(phon[it.id].symbols)
            d = phoneme_frames(phon[it.id], frames, 22050 / 256 / 1000)
        else:
            ids = text_to_ids(it.normalized, "characters", normalized=True)
            d = measured_durations(it.normalized, ids, a, frames, 22050 / 256 / 1000)
        if d is None or len(ids) > 192:
            continue
        text = torch.tensor([ids])
        slots = -(-frames // k)
        f = torch.tensor([frames])
        ref, _ = proportional_alignment(d[None] + 0.01, f, slots, k, 0.0)
        dur = m.length_model.durations.clamp(min=0)
        floor = dur.mean() * 0.05
        prop, _ = proportional_alignment(dur[text] + floor, f, slots, k, float(m.length_model.bias.clamp(min=0)) * 0.5)
        pred_d, _ = m.symbol_durations(text)
        pred, _ = proportional_alignment(pred_d, f, slots, k, 0.0)
        errs["proportional"].append((prop - ref).abs().float().mean())
        errs["predicted"].append((pred - ref).abs().float().mean())
for key, v in errs.items():
    t = torch.stack(v)
    print(f"{key}: mean |symbol index - measured| per slot {float(t.mean()):.2f} symbols (n={len(v)}, "
          f"90th pct of utterance means {float(t.quantile(0.9)):.2f})")
