"""Shared fixtures: the official reference fixture folder and the tiny preset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from djepa_core.config import GeneratorConfig
from djepa_core.presets import get_preset


def official_fixtures_path() -> Path:
    """shared/fixtures/official next to the repository (DJEPA_FIXTURES overrides)."""
    env = os.environ.get("DJEPA_FIXTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "official"


# CI sets DJEPA_REQUIRE_FIXTURES=1: a missing fixture folder is then a failure, never a skip
REQUIRE_FIXTURES = os.environ.get("DJEPA_REQUIRE_FIXTURES") == "1"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = official_fixtures_path()
    if not path.is_dir():
        if REQUIRE_FIXTURES:
            pytest.fail(f"official fixtures not found at {path} (DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip(f"official fixtures not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_config() -> GeneratorConfig:
    return get_preset("djepa-tiny")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a compute-heavy test on one intra-op thread (the machine is shared), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
