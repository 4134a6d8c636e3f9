"""Phonemes through espeak-ng (the binary; required under DJEPA_REQUIRE_FIXTURES=1)."""

from __future__ import annotations

import pytest

from djepa_core.text import PHONEMES, normalize, symbol_set, text_to_ids
from djepa_core.text.phonemes import espeak_binary, phonemes_available, phonemize
from tests.conftest import REQUIRE_FIXTURES


@pytest.fixture(scope="module")
def espeak() -> None:
    if espeak_binary() is None:  # Debian's espeak-ng brings the program and the library
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def test_phonemize_keeps_punctuation(espeak: None) -> None:
    ipa = phonemize(normalize("Hello, world! About 1455; yes?"))
    assert ipa.count(",") == 1 and ipa.endswith("?") and ";" in ipa and "!" in ipa
    assert "ˈ" in ipa and "h" in ipa  # stress marks and IPA letters
    ids = PHONEMES.encode(ipa)
    assert PHONEMES.decode(ids) == ipa  # every symbol espeak-ng wrote is in the set
    assert text_to_ids("Hello, world!", symbols="phonemes") == PHONEMES.encode(phonemize("hello, world!"))
    assert phonemize("") == "" and phonemize("...") == ""
    assert phonemes_available()


def test_symbol_sets() -> None:
    assert symbol_set("characters").symbols[0] == "_" and len(symbol_set("phonemes")) > 60
    with pytest.raises(ValueError, match="characters"):
        symbol_set("bytes")


def test_library_backend_matches_the_program(espeak: None) -> None:
    text = normalize("Hello, world! The St. Paul cathedral, about 1455; yes?")
    assert phonemize(text, backend="library") == phonemize(text, backend="program")
