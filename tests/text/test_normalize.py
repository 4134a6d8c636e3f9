"""English normalization for speech: numbers, years, ordinals, money, abbreviations, punctuation."""

from __future__ import annotations

import pytest

from djepa_core.text import CHARACTERS, normalize, text_to_ids
from djepa_core.text.numbers import cardinal, decimal, ordinal, year


@pytest.mark.parametrize(("raw", "spoken"), [
    ("about 1455", "about fourteen fifty-five"),
    ("Printing, in the only sense with which we are at present concerned, about 1455.",
     "printing, in the only sense with which we are at present concerned, about fourteen fifty-five."),
    ("in 1905", "in nineteen oh five"),
    ("in 1900", "in nineteen hundred"),
    ("in 2000 and 2007 and 2019", "in two thousand and two thousand seven and twenty nineteen"),
    ("the war of 1914-1918", "the war of nineteen fourteen to nineteen eighteen"),
    ("It was 1,000 years.", "it was one thousand years."),
    ("1,500,000 men", "one million five hundred thousand men"),
    ("42 ships", "forty-two ships"),
    ("the 1st, 2nd, 3rd, 4th, 11th, 22nd and 103rd",
     "the first, second, third, fourth, eleventh, twenty-second and one hundred third"),
    ("On June 16, 1863, they met.", "on june sixteenth, eighteen sixty-three, they met."),
    ("3.14", "three point one four"),
    ("it was 0.5 inch", "it was zero point five inch"),
    ("$3.50", "three dollars and fifty cents"),
    ("$1", "one dollar"),
    ("$0.01", "one cent"),
    ("£12.30", "twelve pounds and thirty pence"),
    ("$2 million", "two million dollars"),
    ("$2.5 billion", "two point five billion dollars"),
    ("50% of them", "fifty percent of them"),
    ("at 10:30 a.m.", "at ten thirty a m"),
    ("at 7:05 and 9:00", "at seven oh five and nine o'clock"),
    ("-5 degrees", "minus five degrees"),
    ("agent 007", "agent zero zero seven"),
    ("No. 5 and #7", "number five and number seven"),
    ("Mr. and Mrs. Smith met Dr. Brown.", "mister and missus smith met doctor brown."),
    ("Capt. Hale, Gen. Lee, Sgt. Nash, Rev. Rowe, Prof. Gray and Lt. Ford",
     "captain hale, general lee, sergeant nash, reverend rowe, professor gray and lieutenant ford"),
    ("St. Paul's church on Baker St. is old.", "saint paul's church on baker street is old."),
    ("he lived on Elm St.", "he lived on elm street."),
    ("books, papers, etc.", "books, papers, et cetera."),
    ("e.g. this, i.e. that", "for example this, that is that"),
    ("Smith & Sons", "smith and sons"),
    ("\u201cQuoted\u201d text \u2014 with a dash\u2026", "quoted text, with a dash."),
    ("It's (mostly) [fine] {here}.", "it's mostly fine here."),
    ("What?!  Really...", "what? really."),
    ("well -- maybe", "well, maybe"),
    ("a well-known man", "a well-known man"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("1 + 1 = 2", "one plus one equals two"),
    ("and/or", "and or"),
    ("  , leading punctuation", "leading punctuation"),
])
def test_normalize(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


def test_numbers() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(115) == "one hundred fifteen"
    assert cardinal(1_000_001) == "one million one"
    assert cardinal(7_300_000_021) == "seven billion three hundred million twenty-one"
    assert ordinal(12) == "twelfth" and ordinal(40) == "fortieth" and ordinal(1000) == "one thousand th"[:-3] + "th"
    assert ordinal(101) == "one hundred first" and ordinal(99) == "ninety-ninth"
    assert year(1066) == "ten sixty-six" and year(2010) == "twenty ten" and year(3500) == cardinal(3500)
    assert decimal("", "25") == "zero point two five"


def test_normalization_is_idempotent_and_stays_in_the_character_set() -> None:
    texts = ["Mr. Smith paid $3.50 on the 22nd of May, 1905.", "About 5,862 children, 12.8 feet; 50%!",
             "Between 1825 and 2002 the bridge stood in King St.."]
    for t in texts:
        n = normalize(t)
        assert normalize(n) == n
        assert set(n) <= set(CHARACTERS.symbols[1:])
        assert CHARACTERS.decode(CHARACTERS.encode(n)) == n
    assert text_to_ids("Hi 2!") == CHARACTERS.encode("hi two!")
    assert 0 not in text_to_ids("Hi 2!")
