"""`djepa sample-speech`: text in, one WAV file per text out (the embedded default voice by default)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _sample_speech(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.audio_io import write_wav
    from djepa_core.speech_pipeline import (
        SPEECH_PRESETS,
        SpeechGenerator,
        default_speech_checkpoint,
        load_speech_generator,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = list(args.text or [])
    if args.file is not None:
        texts += [line.strip() for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        print("error: give --text (repeatable) or --file", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    checkpoint = args.checkpoint
    if checkpoint is None and args.preset is None:
        checkpoint = default_speech_checkpoint()
    if checkpoint is not None:
        gen = load_speech_generator(checkpoint, device=args.device)
        source = str(checkpoint)
    else:
        preset = args.preset or "djepa-speech-xs-local-np"
        gen = SpeechGenerator.from_config(SPEECH_PRESETS[preset], seed=args.init_seed).to(args.device)
        source = f"preset {preset} (untrained, init seed {args.init_seed})"
    settings = gen.settings(num_steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature,
                            head_steps=args.head_steps)
    print(f"speaking {len(texts)} text(s) with {source}: {settings.num_steps} AR steps, cfg {settings.cfg_scale}",
          file=sys.stderr)
    try:
        audios = gen.generate(texts, seeds=[args.seed + i for i in range(len(texts))], settings=settings,
                              speed=args.speed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i, audio in enumerate(audios):
        write_wav(args.out / f"speech-{i:03d}-seed{args.seed + i}.wav", audio.cpu(), gen.sample_rate)
        total += audio.numel() / gen.sample_rate
    print(f"wrote {len(audios)} WAV files ({total:.1f} s of audio) to {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


def register(sub: Any) -> None:
    from djepa_core.speech_pipeline import SPEECH_PRESETS

    s = sub.add_parser("sample-speech", help="speak texts into WAV files (text-to-speech)",
                       description="Generate speech with a text-to-speech model (default: the embedded voice) "
                                   "and write one 22,050 Hz mono WAV per text.")
    s.add_argument("--text", action="append", help="a text to speak (repeatable)")
    s.add_argument("--file", type=Path, help="a UTF-8 file of texts, one per line")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a djepa speech .safetensors checkpoint")
    src.add_argument("--preset", choices=sorted(SPEECH_PRESETS), help="an untrained speech preset")
    s.add_argument("--speed", type=float, default=1.0, help="speaking rate (2 = twice as fast)")
    s.add_argument("--steps", type=int, help="masked-AR steps (default: the model's)")
    s.add_argument("--cfg", type=float, help="guidance scale on the text (1 = none)")
    s.add_argument("--temperature", type=float)
    s.add_argument("--head-steps", type=int, help="ODE grid points of the flow head")
    s.add_argument("--seed", type=int, default=0, help="seed of the first text; text i uses seed+i")
    s.add_argument("--init-seed", type=int, default=0, help="weight init seed for untrained presets")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--out", type=Path, default=Path("out/speech"), help="output folder (default out/speech)")
    s.set_defaults(func=_sample_speech)
