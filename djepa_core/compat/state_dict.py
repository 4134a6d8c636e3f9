"""Safe reading and strict loading of state dicts (shared by every importer and our checkpoints).

`.pth` files are read with `torch.load(..., weights_only=True)` (never a full unpickle), with only
`argparse.Namespace` allow-listed (the reference pickles its run arguments). `_orig_mod.`
(torch.compile) and `module.` (DDP) prefixes are stripped. A strict load names every missing,
unexpected and mis-shaped key before touching any weight.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

PREFIXES = ("_orig_mod.", "module.")
SHOW = 5  # keys named per category in error messages


def strip_prefixes(key: str) -> str:
    """Remove any leading `_orig_mod.` / `module.` prefixes (in any order, repeated)."""
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                changed = True
    return key


def read_container(path: str | Path) -> dict[str, Any]:
    """A checkpoint file as a dict: `.safetensors` -> {"model": tensors}; `.pth` -> its (safe) dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        return {"model": load_file(str(path), device="cpu")}
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # an unpickling error: the file holds more than weights and plain args
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: refused to load with weights_only=True (only tensors, containers and "
                         f"argparse.Namespace are allowed): {first}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a dict, found {type(obj).__name__}")
    return dict(obj)


def is_flat_state_dict(obj: Mapping[str, Any]) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def pick_state(container: Mapping[str, Any], preferred: tuple[str, ...] = ("model",),
               source: str = "") -> dict[str, torch.Tensor]:
    """The first state dict found under `preferred` keys (then `model`, `state_dict`), or the flat
    container itself; prefixes stripped, order kept."""
    where = f"{source}: " if source else ""
    state: Mapping[str, Any] | None = None
    for key in (*preferred, "model", "state_dict"):
        if isinstance(container.get(key), Mapping):
            state = container[key]
            break
    if state is None:
        if not is_flat_state_dict(container):
            raise ValueError(f"{where}no state dict under {list(preferred)} and not a flat state dict "
                             f"(top-level keys: {sorted(map(str, container))[:10]})")
        state = container
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{where}entry {key!r} is a {type(value).__name__}, not a tensor")
        name = strip_prefixes(str(key))
        if name in out:
            raise ValueError(f"{where}key {name!r} appears twice after stripping prefixes")
        out[name] = value
    return out


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOW])
    more = f", ... (+{len(items) - SHOW} more)" if len(items) > SHOW else ""
    return f"{len(items)} {title}: {shown}{more}"


def check_state_dict(state: Mapping[str, torch.Tensor], module: nn.Module, source: str = "") -> None:
    """Raise ValueError unless `state` has exactly the module's keys with the same shapes."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} (file {tuple(state[k].shape)} vs model {shape})"
                 for k, shape in expected.items() if k in state and tuple(state[k].shape) != shape]
    if missing or unexpected or misshaped:
        parts = [_listing(t, items) for t, items in (("missing", missing), ("unexpected", unexpected),
                                                      ("mis-shaped", misshaped)) if items]
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}state dict does not match {type(module).__name__}: " + "; ".join(parts))


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "",
                float32: bool = False) -> None:
    """Check, then load `state` into `module` (floating tensors cast to float32 when asked)."""
    check_state_dict(state, module, source)
    if float32:
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    module.load_state_dict(dict(state), strict=True)
