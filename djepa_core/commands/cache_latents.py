"""`djepa cache-latents`: VAE moments of each image of a folder and of its flip, for training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cache(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.data.imagefolder import ImageFolder
    from djepa_core.data.latent_cache import write_latent_cache
    from djepa_core.tokenizers.factory import build_tokenizer
    from djepa_core.tokenizers.image_vae import VAETokenizer
    from djepa_core.trainers.config import load_config
    from djepa_core.trainers.loop import load_tokenizer_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config, args.set or [])
    tok_cfg = config.generator_config().tokenizer
    tokenizer = build_tokenizer(tok_cfg)
    if not isinstance(tokenizer, VAETokenizer):
        raise ValueError("cache-latents needs a VAE tokenizer (tokenizer.kind: vae); pixel patches need no cache")
    if config.tokenizer_checkpoint:
        load_tokenizer_weights(tokenizer, config.tokenizer_checkpoint)
    elif not args.allow_random_vae:
        raise ValueError("set tokenizer_checkpoint in the run config (a djepa .safetensors holding the VAE); "
                         "--allow-random-vae is for tests")
    device = torch.device(args.device)
    tokenizer.to(device).eval()
    dataset = ImageFolder(args.images, tok_cfg.image_size, tok_cfg.channels)
    out = write_latent_cache(args.out, dataset, tokenizer, tok_cfg, args.batch_size, device, progress=True)
    print(f"wrote {out} ({len(dataset)} images x 2 (flip), {len(dataset.classes)} classes)")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("cache-latents", help="cache VAE latents (image and its flip) of an image folder",
                       description="Encode every image of an ImageNet-layout folder (root/<class>/<image>) and its "
                                   "horizontal flip with the run config's VAE; training then reads the cache "
                                   "(data.kind: latents, data.path: OUT).")
    s.add_argument("config", type=Path, help="run config (YAML) naming the generator and tokenizer_checkpoint")
    s.add_argument("--images", type=Path, required=True, help="image folder root/<class>/<image>")
    s.add_argument("--out", type=Path, required=True, help="cache folder to write")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--allow-random-vae", action="store_true", help="use an untrained VAE (tests only)")
    s.set_defaults(func=_cache)
