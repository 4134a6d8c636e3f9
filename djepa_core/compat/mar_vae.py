"""Import MAR's released KL-16 VAE weights (`kl16.ckpt`-style `.pth`, or `.safetensors`).

The `.pth` is read with `torch.load(..., weights_only=True)` (never a full unpickle); only
`argparse.Namespace` is allow-listed, for containers that also pickle the run's arguments. The state
dict is taken from the `model` entry, or from the top level when the file already is a flat state dict.
`_orig_mod.` (torch.compile) and `module.` (DDP) prefixes are stripped. Keys and shapes must match
:class:`AutoencoderKL` exactly; otherwise a ValueError names the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig

_PREFIXES = ("_orig_mod.", "module.")
_SHOW = 5  # keys named per category in error messages


def strip_prefixes(key: str) -> str:
    """Remove any leading `_orig_mod.` / `module.` prefixes (in any order, repeated)."""
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                changed = True
    return key


def _is_flat_state_dict(obj: Mapping[str, Any]) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Raw tensors of a MAR VAE file (prefixes stripped, original order kept)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        raw: Any = load_file(str(path), device="cpu")
    else:
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a dict, got {type(raw).__name__}")
    if "model" in raw and isinstance(raw["model"], Mapping):
        state = raw["model"]
    elif _is_flat_state_dict(raw):
        state = raw
    else:
        raise ValueError(f"{path}: no 'model' state dict and not a flat state dict "
                         f"(top-level keys: {sorted(map(str, raw))[:10]})")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        name = strip_prefixes(str(key))
        if name in out:
            raise ValueError(f"{path}: key {name!r} appears twice after stripping prefixes")
        out[name] = value
    return out


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    more = f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{len(items)} {title}: {shown}{more}"


def check_state_dict(state: Mapping[str, torch.Tensor], model: torch.nn.Module, source: str = "") -> None:
    """Raise ValueError unless `state` has exactly the model's keys with the same shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} (file {tuple(state[k].shape)} vs model {shape})"
                 for k, shape in expected.items() if k in state and tuple(state[k].shape) != shape]
    if missing or unexpected or misshaped:
        parts = [_listing(t, items) for t, items in (("missing", missing), ("unexpected", unexpected),
                                                      ("mis-shaped", misshaped)) if items]
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}VAE state dict does not match AutoencoderKL: " + "; ".join(parts))


def load_mar_vae(path: str | Path, config: VAEConfig | None = None) -> AutoencoderKL:
    """MAR's VAE from `path` (`.pth`/`.ckpt` or `.safetensors`), float32 on CPU, in eval mode.

    `config` defaults to the KL-16 VAE (:class:`VAEConfig` defaults). Floating tensors are cast to
    float32. Raises ValueError on any key or shape mismatch (nothing is loaded partially)."""
    state = read_state_dict(path)
    model = AutoencoderKL(config if config is not None else VAEConfig())
    check_state_dict(state, model, source=str(path))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
