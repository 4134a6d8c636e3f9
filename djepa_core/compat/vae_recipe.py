"""The tiny-vae fixture's portable integer weight recipe (fixtures/official/README.md section 4).

For key k, state0 = seed * 2**32 + CRC-32(k) (mod 2**64). Element i = 1..numel (row-major index + 1):
z = state0 + i * 0x9E3779B97F4A7C15, then the splitmix64 finaliser
z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; z = z ^ z>>31 (mod 2**64);
r = 2 * (z >> 40) / 2**24 - 1 in [-1, 1) (exact in float32); value = offset + r * scale in float32
(one rounded multiply, one rounded add). Vectorised with numpy uint64 (wrapping arithmetic).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

DEFAULT_SEED = 20241003
_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_CHUNK = 1 << 20  # elements per vectorised chunk (bounds the uint64 temporaries to ~8 MB each)


def _recipe_values(key: str, numel: int, offset: float, scale: float, seed: int) -> np.ndarray:
    """float32 vector of the recipe's `numel` values for `key`."""
    state0 = np.uint64(((seed << 32) + zlib.crc32(key.encode("utf-8"))) & _MASK64)
    out = np.empty(numel, dtype=np.float32)
    off32 = np.float32(offset)
    scale32 = np.float32(scale)
    inv = np.float32(2.0**-23)
    for start in range(0, numel, _CHUNK):
        stop = min(start + _CHUNK, numel)
        z = np.arange(start + 1, stop + 1, dtype=np.uint64)  # element index i (1-based)
        z *= _GOLDEN  # arrays wrap mod 2**64 silently
        z += state0
        z ^= z >> np.uint64(30)
        z *= _MUL1
        z ^= z >> np.uint64(27)
        z *= _MUL2
        z ^= z >> np.uint64(31)
        top = (z >> np.uint64(40)).astype(np.float32)  # 24-bit integers, exact in float32
        r = top * inv - np.float32(1.0)  # 2 * top / 2**24 - 1, exact
        out[start:stop] = r * scale32 + off32  # float32 multiply then float32 add
    return out


def recipe_tensor(key: str, shape: Sequence[int], offset: float, scale: float,
                  seed: int = DEFAULT_SEED) -> torch.Tensor:
    """The recipe's float32 tensor of `shape` for state-dict key `key`."""
    dims = tuple(int(d) for d in shape)
    numel = math.prod(dims)
    values = _recipe_values(key, numel, offset, scale, seed)
    return torch.from_numpy(values).reshape(dims)


def _check(key: str, t: torch.Tensor, spec: Mapping[str, Any]) -> None:
    """Raise ValueError naming `key` when `t` disagrees with the spec's sum / sum_sq / first values."""
    v = t.reshape(-1).numpy().astype(np.float64)
    total = float(v.sum())
    total_sq = float((v * v).sum())
    # float64 sums of float32 values; only summation order differs, so a tiny relative slack suffices.
    abs_slack = 1e-9 * float(np.abs(v).sum()) + 1e-12
    sq_slack = 1e-9 * total_sq + 1e-12
    problems: list[str] = []
    if "sum" in spec and abs(total - float(spec["sum"])) > abs_slack:
        problems.append(f"sum {total!r} != {spec['sum']!r}")
    if "sum_sq" in spec and abs(total_sq - float(spec["sum_sq"])) > sq_slack:
        problems.append(f"sum_sq {total_sq!r} != {spec['sum_sq']!r}")
    if "first" in spec:
        first = [float(x) for x in spec["first"]]
        ours = [float(x) for x in v[: len(first)]]
        if ours != first:
            problems.append(f"first values {ours} != {first}")
    if problems:
        raise ValueError(f"recipe checksum mismatch for {key!r}: " + "; ".join(problems))


def recipe_state_dict(weights_json: Mapping[str, Any], seed: int = DEFAULT_SEED,
                      verify: bool = True) -> dict[str, torch.Tensor]:
    """State dict generated from golden.json's per-key recipe listing.

    `weights_json` is either golden.json's "weights" mapping (key -> {shape, offset, scale, sum, sum_sq,
    first}) or the whole golden.json (its "weights" entry is used). Keys keep the listing's order.
    With `verify`, every tensor is checked against its checksums; a mismatch raises ValueError naming
    the key.
    """
    listing = weights_json.get("weights", weights_json)
    if not isinstance(listing, Mapping):
        raise ValueError("weights listing must map state-dict keys to recipe entries")
    out: dict[str, torch.Tensor] = {}
    for key, spec in listing.items():
        if not isinstance(spec, Mapping) or not {"shape", "offset", "scale"} <= set(spec):
            raise ValueError(f"recipe entry for {key!r} lacks shape/offset/scale: {spec!r}")
        t = recipe_tensor(key, spec["shape"], float(spec["offset"]), float(spec["scale"]), seed)
        if verify:
            _check(key, t, spec)
        out[key] = t
    return out
