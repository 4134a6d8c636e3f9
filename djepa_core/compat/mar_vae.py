"""Import MAR's released KL-16 VAE weights (`kl16.ckpt`-style `.pth`, or `.safetensors`).

The `.pth` is read with `torch.load(..., weights_only=True)` (never a full unpickle); only
`argparse.Namespace` is allow-listed, for containers that also pickle the run's arguments. The state
dict is taken from the `model` entry, or from the top level when the file already is a flat state dict.
`_orig_mod.` (torch.compile) and `module.` (DDP) prefixes are stripped. Keys and shapes must match
:class:`AutoencoderKL` exactly; otherwise a ValueError names the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

from pathlib import Path

import torch

from djepa_core.compat.state_dict import load_strict, pick_state, read_container
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Raw tensors of a MAR VAE file (prefixes stripped, original order kept)."""
    return pick_state(read_container(path), ("model",), source=str(path))


def load_mar_vae(path: str | Path, config: VAEConfig | None = None) -> AutoencoderKL:
    """MAR's VAE from `path` (`.pth`/`.ckpt` or `.safetensors`), float32 on CPU, in eval mode.

    `config` defaults to the KL-16 VAE (:class:`VAEConfig` defaults). Floating tensors are cast to
    float32. Raises ValueError on any key or shape mismatch (nothing is loaded partially)."""
    state = read_state_dict(path)
    model = AutoencoderKL(config if config is not None else VAEConfig())
    load_strict(model, state, source=str(path), float32=True)
    return model.eval()
