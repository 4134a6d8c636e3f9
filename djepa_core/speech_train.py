"""A small, self-contained training loop for text-to-speech D-JEPA (smoke runs; CPU or one device).

`python -m djepa_core.speech_train CORPUS --preset djepa-speech-s --steps 200 --out tts.safetensors`
reads an LJSpeech-layout corpus (training split), computes mel tokens and symbol ids once, fits the
length model by least squares, then runs AdamW (the reference's betas 0.9/0.95, weight decay 0.02,
constant LR after a linear warm-up, grad clip 3.0) on `model.loss(SpeechBatch)` with an EMA copy as the
JEPA target, and saves the EMA weights. Each batch is padded to its longest utterance (rounded up to 16
token slots), not to the model's L, which saves compute on short batches. Until the main trainer
(djepa_core/trainers) takes speech batches, this is the way to train the speech model; it keeps no
resumable state.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

from djepa_core.data.ljspeech import LJSpeech
from djepa_core.data.speech_batches import SpeechExamples
from djepa_core.models.ema import EMA
from djepa_core.models.tts import TextToSpeechDJEPA
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, save_speech_generator


def train_speech(corpus: str | Path, preset: str, steps: int, batch_size: int = 16, lr: float = 3e-4,
                 warmup: int = 100, ema_decay: float = 0.999, seed: int = 0, max_utterances: int | None = None,
                 log_every: int = 20, device: str = "cpu") -> tuple[SpeechGenerator, list[dict[str, float]]]:
    config = SPEECH_PRESETS[preset]
    gen = SpeechGenerator.from_config(config, seed=seed)
    ds = LJSpeech(corpus, "train")
    if max_utterances is not None:
        ds.items = ds.items[:max_utterances]
    t0 = time.monotonic()
    ex = SpeechExamples(ds, config.speech, config.model.seq_len)
    print(f"{len(ex)} utterances ({ex.skipped} too long) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    err = gen.model.length_model.fit(ex.padded_text(), torch.tensor(ex.frames, dtype=torch.float))
    print(f"length model: mean relative error {err:.3f} (training split)", file=sys.stderr)
    model = gen.model.to(device).train()
    ema = EMA(model, ema_decay)
    target = ema.model
    assert isinstance(target, TextToSpeechDJEPA)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if name.startswith("length_model."):
            p.requires_grad_(False)  # fit in closed form above
            continue
        (no_decay if p.dim() < 2 or "emb" in name or "buffer" in name or "pos_embed" in name
         or name in ("fake_latent", "mask_token") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.02}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    t0 = time.monotonic()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(1, warmup))
        idx = torch.randint(0, len(ex), (batch_size,), generator=g).tolist()
        longest = max(ex.tokens[i].shape[0] for i in idx)
        slots = min(ex.max_tokens, -(-longest // 16) * 16)  # pad to the longest row (multiple of 16), not to L
        out = model.loss(ex.batch(idx, device, slots), target=target, generator=g)
        if not math.isfinite(float(out.total.detach())):
            raise FloatingPointError(f"non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        ema.update(model)
        row = {"step": step + 1, "loss": float(out.total.detach()), "denoise": float(out.denoise.detach()),
               "jepa": float(out.jepa.detach()), "seconds": time.monotonic() - t0}
        history.append(row)
        if (step + 1) % log_every == 0 or step == 0:
            print(" ".join(f"{k} {v:.4g}" for k, v in row.items()), file=sys.stderr)
    trained = copy.deepcopy(ema.model).eval()
    assert isinstance(trained, TextToSpeechDJEPA)
    trained.length_model.load_state_dict(model.length_model.state_dict())
    return SpeechGenerator(config, trained), history


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--preset", default="djepa-speech-s", choices=sorted(SPEECH_PRESETS))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-utterances", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen, _ = train_speech(args.corpus, args.preset, args.steps, args.batch_size, args.lr, args.warmup, args.ema,
                          args.seed, args.max_utterances, device=args.device)
    save_speech_generator(args.out, gen.to("cpu"))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
