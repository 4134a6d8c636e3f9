"""Text front end of speech: English normalization, symbol sets, optional espeak-ng phonemes (from its
phonemizer, or from the phoneme events of the library speaking the text: `phoneme-events`)."""

from __future__ import annotations

from djepa_core.text.normalize import normalize
from djepa_core.text.symbols import CHARACTERS, PHONEMES, SymbolSet, symbol_set


def text_to_ids(text: str, symbols: str = "characters", normalized: bool = False, voice: str = "en-us") -> list[int]:
    """Raw (or already `normalized`) English text -> symbol ids of the chosen set."""
    norm = text if normalized else normalize(text)
    if symbols == "phoneme-events":
        from djepa_core.data.espeak_align import spoken_phonemes

        return PHONEMES.encode(spoken_phonemes(norm, voice))
    if symbols == "phonemes":
        from djepa_core.text.phonemes import phonemize

        return PHONEMES.encode(phonemize(norm, voice))
    return symbol_set(symbols).encode(norm)


__all__ = ["CHARACTERS", "PHONEMES", "SymbolSet", "normalize", "symbol_set", "text_to_ids"]
