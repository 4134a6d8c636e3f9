"""A small, self-contained training loop for text-to-speech D-JEPA (smoke runs; CPU or one device).

`python -m djepa_core.speech_train CORPUS --preset djepa-speech-s --steps 200 --out tts.safetensors`
reads an LJSpeech-layout corpus (training split), computes mel tokens and symbol ids once (and the measured
frames per symbol when the corpus has `alignments.csv`, or `phonemes.csv` for phoneme-event symbols: a
feature cache of character symbols is reused for those, its mel tokens kept), fits the length model by
least squares (and, for the measured-alignment presets, the duration model on the measured durations),
then runs AdamW (the reference's betas 0.9/0.95, weight decay 0.02, constant or cosine LR after a linear
warm-up, grad clip 3.0) on `model.loss(SpeechBatch)` with an EMA copy as the JEPA target, and saves the EMA
weights. Each batch is padded to its longest utterance (rounded up to 16 token slots), not to the model's
L, which saves compute on short batches. Until the main trainer (djepa_core/trainers) takes speech
batches, this is the way to train the speech model; `--checkpoint-every`
writes the EMA generator and a resumable state as it goes.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from djepa_core.data.ljspeech import LJSpeech
from djepa_core.data.speech_batches import SpeechExamples
from djepa_core.models.ema import EMA
from djepa_core.models.tts import TextToSpeechDJEPA
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, TTSConfig, save_speech_generator


def load_examples(corpus: str | Path, config: TTSConfig, max_utterances: int | None = None,
                  cache: Path | None = None) -> SpeechExamples:
    """The training split's features, from `cache` when it holds them (and written there otherwise)."""
    if cache is not None and cache.is_file() and max_utterances is None:
        ex = SpeechExamples.load(cache, config.speech, config.model.seq_len, corpus=corpus)
        if all(d is None for d in ex.durations):  # a cache written before the corpus had alignments.csv
            ex.attach_alignments(corpus)
        return ex
    ds = LJSpeech(corpus, "train")
    if max_utterances is not None:
        ds.items = ds.items[:max_utterances]
    t0 = time.monotonic()
    ex = SpeechExamples(ds, config.speech, config.model.seq_len)
    print(f"{len(ex)} utterances ({ex.skipped} too long) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if cache is not None and max_utterances is None:
        ex.save(cache)
    return ex


def copy_fitted(model: TextToSpeechDJEPA, trained: TextToSpeechDJEPA) -> None:
    """The separately fit parts (length model, duration model) of `model` into `trained` (the EMA copy)."""
    trained.length_model.load_state_dict(model.length_model.state_dict())
    if "duration_model" in model._modules:
        trained.duration_model.load_state_dict(model.duration_model.state_dict())


def train_speech(corpus: str | Path, preset: str | TTSConfig, steps: int, batch_size: int = 16, lr: float = 3e-4,
                 warmup: int = 100, ema_decay: float = 0.999, seed: int = 0, max_utterances: int | None = None,
                 log_every: int = 20, device: str = "cpu", cache: Path | None = None, decay: str = "constant",
                 min_lr: float = 0.1, checkpoint: Path | None = None, checkpoint_every: int = 0,
                 log: Callable[[str], None] | None = None,
                 budget_seconds: float | None = None,
                 duration_steps: int = 600) -> tuple[SpeechGenerator, list[dict[str, float]]]:
    """Train and return (the EMA generator, per-step history). `decay` "cosine" lowers the LR after the
    warm-up to `min_lr` x lr at the last step. With `budget_seconds`, training also stops once that much
    training time has passed, and the schedule's progress is the larger of the step and time fractions
    (so a run on a busy machine still ends its decay). With `checkpoint`, the EMA generator is written there every
    `checkpoint_every` steps and the full state beside it (`<checkpoint>.state.pt`), from which a later
    call with the same arguments resumes."""
    config = SPEECH_PRESETS[preset] if isinstance(preset, str) else preset
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    gen = SpeechGenerator.from_config(config, seed=seed)
    ex = load_examples(corpus, config, max_utterances, cache)
    err = gen.model.length_model.fit(ex.padded_text(), torch.tensor(ex.frames, dtype=torch.float))
    say(f"{len(ex)} utterances; length model: mean relative error {err:.3f} (training split)")
    aligned = sum(d is not None for d in ex.durations)
    if config.speech.alignment == "measured":
        if aligned == 0:
            raise ValueError(f"preset {config.name} trains on measured alignments, and {corpus} has none "
                             "(alignments.csv: `djepa data speech` writes it, or data.espeak_align.align_corpus)")
        ids, dur = ex.padded_durations()
        t_fit = time.monotonic()
        derr = gen.model.duration_model.fit(ids, dur, steps=duration_steps, seed=seed)
        say(f"{aligned} utterances with measured durations; duration model: mean abs error {derr:.3f} frames "
            f"per symbol ({time.monotonic() - t_fit:.0f} s)")
    model = gen.model.to(device).train()
    ema = EMA(model, ema_decay)
    target = ema.model
    assert isinstance(target, TextToSpeechDJEPA)
    decay_params: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if name.startswith(("length_model.", "duration_model.")):
            p.requires_grad_(False)  # fit above (closed form; the duration model's own regression)
            continue
        (no_decay if p.dim() < 2 or "emb" in name or "buffer" in name or "pos_embed" in name
         or name in ("fake_latent", "mask_token") else decay_params).append(p)
    opt = torch.optim.AdamW([{"params": decay_params, "weight_decay": 0.02},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    start = 0
    state_path = checkpoint.with_name(checkpoint.name + ".state.pt") if checkpoint is not None else None
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        target.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["generator"])
        start, history = int(state["step"]), list(state["history"])
        say(f"resumed from {state_path} at step {start}")
    t0 = time.monotonic() - (history[-1]["seconds"] if history else 0.0)

    def save(step: int) -> None:
        assert checkpoint is not None and state_path is not None
        trained = copy.deepcopy(ema.model).eval()
        assert isinstance(trained, TextToSpeechDJEPA)
        copy_fitted(model, trained)
        save_speech_generator(checkpoint, SpeechGenerator(config, trained.to("cpu")),
                              {"steps": str(step)})
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save({"model": model.state_dict(), "ema": target.state_dict(), "opt": opt.state_dict(),
                    "generator": g.get_state(), "step": step, "history": history}, tmp)
        tmp.replace(state_path)

    end = steps
    for step in range(start, steps):
        elapsed = time.monotonic() - t0
        if budget_seconds is not None and elapsed >= budget_seconds:
            end = step
            say(f"time budget of {budget_seconds:.0f} s reached at step {step}")
            break
        warm = min(1.0, (step + 1) / max(1, warmup))
        if decay == "cosine" and step >= warmup:
            frac = (step - warmup) / max(1, steps - warmup)
            if budget_seconds is not None:
                frac = max(frac, elapsed / budget_seconds)
            warm = min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        for group in opt.param_groups:
            group["lr"] = lr * warm
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
               "jepa": float(out.jepa.detach()), "lr": lr * warm, "seconds": time.monotonic() - t0}
        history.append(row)
        if (step + 1) % log_every == 0 or step == 0:
            say(" ".join(f"{k} {v:.4g}" for k, v in row.items()))
        if checkpoint is not None and checkpoint_every > 0 and (step + 1) % checkpoint_every == 0:
            save(step + 1)
    if checkpoint is not None and start < end:
        save(end)
    trained = copy.deepcopy(ema.model).eval()
    assert isinstance(trained, TextToSpeechDJEPA)
    copy_fitted(model, trained)
    return SpeechGenerator(config, trained), history


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--preset", default="djepa-speech-s", choices=sorted(SPEECH_PRESETS))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--decay", choices=("constant", "cosine"), default="constant")
    p.add_argument("--min-lr", type=float, default=0.1, help="cosine: final LR as a fraction of --lr")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-utterances", type=int)
    p.add_argument("--cache", type=Path, help="feature cache file (read when present, written otherwise)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="write --out (and its .state.pt, to resume) every N steps")
    p.add_argument("--budget-seconds", type=float, help="stop after this much training time (see train_speech)")
    p.add_argument("--duration-steps", type=int, default=600,
                   help="measured-alignment presets: Adam steps fitting the duration model before training")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    _gen, _ = train_speech(args.corpus, args.preset, args.steps, args.batch_size, args.lr, args.warmup, args.ema,
                          args.seed, args.max_utterances, device=args.device, cache=args.cache, decay=args.decay,
                          min_lr=args.min_lr, checkpoint=args.out, checkpoint_every=args.checkpoint_every,
                           log_every=args.log_every, budget_seconds=args.budget_seconds,
                           duration_steps=args.duration_steps)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
