"""The tiny-vae weight recipe: every checksum of golden.json, and corruption is caught."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch

from djepa_core.compat.vae_recipe import recipe_state_dict, recipe_tensor
from tests.conftest import REQUIRE_FIXTURES, official_fixtures_path

FIXTURES = official_fixtures_path()
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir() and not REQUIRE_FIXTURES,
                                    reason=f"fixtures not found at {FIXTURES}")


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "tiny-vae" / "golden.json").read_text())
    return data


@needs_fixtures
def test_all_checksums_match() -> None:
    g = golden()
    state = recipe_state_dict(g["weights"], seed=g["fixture_seed"])
    assert list(state) == list(g["weights"])
    assert sum(t.numel() for t in state.values()) == g["total_parameters"] == 4_210_291
    for key, spec in g["weights"].items():
        t = state[key]
        assert t.dtype == torch.float32 and list(t.shape) == spec["shape"]
        assert t.reshape(-1)[:4].tolist() == spec["first"]


def test_recipe_values_are_in_range_and_deterministic() -> None:
    a = recipe_tensor("some.key", (3, 5), offset=1.0, scale=0.25)
    b = recipe_tensor("some.key", (3, 5), offset=1.0, scale=0.25)
    c = recipe_tensor("other.key", (3, 5), offset=1.0, scale=0.25)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 5) and a.dtype == torch.float32
    assert bool(((a >= 0.75) & (a < 1.25)).all())
    # the seed enters the state
    assert not torch.equal(a, recipe_tensor("some.key", (3, 5), 1.0, 0.25, seed=1))


@needs_fixtures
def test_corrupted_offset_raises_naming_the_key() -> None:
    weights = copy.deepcopy(golden()["weights"])
    key = "decoder.mid.block_1.norm2.weight"
    weights[key]["offset"] = 1.001
    small = {k: weights[k] for k in ("encoder.conv_in.weight", key)}
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        recipe_state_dict(small)


@needs_fixtures
def test_corrupted_checksum_raises() -> None:
    weights = copy.deepcopy(golden()["weights"])
    key = "encoder.conv_in.bias"
    weights[key]["first"][2] += 1e-7
    with pytest.raises(ValueError, match=r"encoder\.conv_in\.bias"):
        recipe_state_dict({key: weights[key]})
