"""`djepa presets`: list the preset registry."""

from __future__ import annotations

import argparse
from typing import Any

from djepa_core.presets import PRESETS

DEFAULT_PRESET = "djepa-s"

def _presets(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.models.djepa import DJEPA

    for name, cfg in PRESETS.items():
        m = cfg.model
        with torch.device("meta"):
            n = sum(p.numel() for p in DJEPA(m).parameters())
        print(f"{name:<14} {n / 1e6:9.2f}M params  width {m.encoder_dim} depth {m.encoder_depth}/{m.decoder_depth} "
              f"heads {m.encoder_heads}  head {m.head} {m.head_depth}x{m.head_width}  tokens {m.grid}x{m.token_dim} "
              f"({cfg.tokenizer.kind} {cfg.tokenizer.image_size}px)  classes {m.num_classes}")
    from djepa_core.speech_pipeline import print_speech_presets

    print_speech_presets()
    return 0


def register(sub: Any) -> None:
    pr = sub.add_parser("presets", help="list the model presets")
    pr.set_defaults(func=_presets)

