"""Shared fixtures of the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from djepa_core.data.espeak_align import espeak_library_available
from tests.conftest import REQUIRE_FIXTURES


@pytest.fixture(scope="session")
def espeak_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-sentence corpus built by `djepa data speech`'s builder with espeak-ng (audio, alignments.csv,
    phonemes.csv); skipped without espeak-ng, a failure under DJEPA_REQUIRE_FIXTURES=1. Read-only: copy it to
    change it."""
    if shutil.which("espeak-ng") is None or not espeak_library_available():
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from djepa_core.data.speech_corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("espeak") / "corpus", 5, seed=2, workers=1)
