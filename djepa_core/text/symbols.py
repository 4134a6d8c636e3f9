"""Symbol sets of the text front end: characters (the default) and IPA phonemes (espeak-ng; two ways to get
them from a text: `phonemes` through espeak-ng's phonemizer, `phoneme-events` from its phoneme events).

Id 0 is padding in both sets. Symbols outside a set are dropped by `encode` (normalization leaves
none for characters; espeak-ng may emit a rare IPA symbol not listed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

PAD = "_"
PUNCTUATION = " !',-.:;?"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# what espeak-ng writes for English with --ipa: vowels, consonants, stress and length marks, syllabic mark
IPA = ("aeiouæɐɑɒɔəɚɛɜɝɞɪɨʉʊʌɵøœɘᵻ" "bcdfhjklmnpqrstvwxzçðŋɡɣɫɬɹɾʁʃʒʔʍθχʲ" "ˈˌːˑ\u0329\u0303")

# "phoneme-events": the PHONEMES set, the sequence read from espeak-ng's phoneme events while it speaks the
# text (data/espeak_align.spoken_phonemes; what a corpus's phonemes.csv records with each symbol's duration)
SymbolKind = Literal["characters", "phonemes", "phoneme-events"]


@dataclass(frozen=True)
class SymbolSet:
    name: SymbolKind
    symbols: str
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbol set {self.name!r} repeats a symbol")
        if self.symbols[0] != PAD:
            raise ValueError("symbol 0 must be the padding symbol")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Ids of the symbols of `text` (padding and unknown symbols dropped)."""
        return [self._index[c] for c in text if c in self._index and c != PAD]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i != 0)


CHARACTERS = SymbolSet("characters", PAD + PUNCTUATION + LETTERS)
PHONEMES = SymbolSet("phonemes", PAD + PUNCTUATION + "".join(dict.fromkeys(IPA)))


def symbol_set(kind: str) -> SymbolSet:
    if kind == "characters":
        return CHARACTERS
    if kind in ("phonemes", "phoneme-events"):
        return PHONEMES
    raise ValueError(f"symbols must be 'characters', 'phonemes' or 'phoneme-events', got {kind!r}")
