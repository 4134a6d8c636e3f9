"""`djepa data`: build the small offline corpora. `djepa data speech` writes an LJSpeech-layout corpus
(metadata.csv + wavs/) spoken by espeak-ng (see djepa_core/data/speech_corpus.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _speech(args: argparse.Namespace) -> int:
    from djepa_core.data.speech_corpus import build_corpus

    if args.sentences < 1:
        raise ValueError("--sentences must be >= 1")
    start = time.monotonic()
    step = max(1, args.sentences // 20)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"  {done}/{total} sentences", file=sys.stderr)

    try:
        out = build_corpus(args.out, args.sentences, seed=args.seed, voice=args.voice, speed=args.speed,
                           pitch=args.pitch, workers=args.workers, force=args.force, progress=progress)
    except RuntimeError as e:  # espeak-ng missing
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.sentences} utterances to {out} in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    d = sub.add_parser("data", help="build the small offline corpora (speech: espeak-ng, LJSpeech layout)",
                       description="Build offline corpora for training and evaluation.")
    kinds = d.add_subparsers(dest="data_kind", required=True, metavar="KIND")
    s = kinds.add_parser("speech", help="an LJSpeech-1.1-layout corpus spoken by espeak-ng",
                         description="Generate seeded English sentences (numbers, years, dates, money, "
                                     "abbreviations) and speak their normalized text with one espeak-ng voice "
                                     "into OUT/wavs/<id>.wav (22,050 Hz); OUT/metadata.csv holds "
                                     "id|text|normalized text. Needs the espeak-ng program. With espeak-ng's "
                                     "library, also OUT/alignments.csv (each word's measured start and end) and "
                                     "OUT/phonemes.csv (the spoken phonemes with their measured durations).")
    s.add_argument("--out", type=Path, required=True, help="corpus folder (created)")
    s.add_argument("--sentences", type=int, default=5000, help="number of utterances (default 5000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sentence grammar")
    s.add_argument("--voice", default="en-us", help="espeak-ng voice (default en-us)")
    s.add_argument("--speed", type=int, default=160, help="words per minute (default 160)")
    s.add_argument("--pitch", type=int, default=50, help="espeak-ng pitch 0..99 (default 50)")
    s.add_argument("--workers", type=int, default=2, help="espeak-ng processes at once (default 2)")
    s.add_argument("--force", action="store_true", help="overwrite an existing corpus in --out")
    s.set_defaults(func=_speech)
