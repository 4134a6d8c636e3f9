"""English text normalization for speech: what a reader says, in lowercase characters.

`normalize("Mr. Smith paid $3.50 in 1455.")` -> "mister smith paid three dollars and fifty cents in
fourteen fifty-five." Steps, in order:

1. ASCII: curly quotes and dashes to plain ones, accents dropped (NFKD), "&" -> "and".
2. Abbreviations with a period (Mr. Mrs. Dr. Jr. Gen. Capt. No. etc., e.g., i.e., vs.); "St." is
   "saint" before a capitalised word ("St. Paul") and "street" after one ("Baker St.").
3. Numbers: thousands separators ("1,500" -> cardinal), currency ($ £ € with cents/pence and a scale word:
   "$2 million" -> "two million dollars"), percentages, ordinals ("22nd"), clock times ("10:30"), year
   ranges ("1914-1918" -> "... to ..."), decimals ("3.14" -> "three point one four"), negatives, and plain
   integers: a day after a month is an ordinal ("May 3" -> "may third"); 1000..2999 written without a
   separator read as years ("about 1455" -> "about fourteen fifty-five"), others as cardinals; leading
   zeros and very long numbers digit by digit.
4. Punctuation: brackets and quotes dropped, other symbols spelled ("%", "+", "=", "@") or removed;
   only letters, space and ! ' , - . : ; ? remain; runs of punctuation and spaces collapsed.
5. Lowercase.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from djepa_core.text.numbers import cardinal, decimal, digits, ordinal, year

_ASCII = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"',
          "\u201e": '"', "\u2013": "-", "\u2014": ", ", "\u2212": "-", "\u2026": "...", "\u00a0": " ",
          "\u00bd": " and a half", "\u00bc": " and a quarter", "\u00be": " and three quarters"}

# abbreviation (without its period, case-insensitive) -> expansion
_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "drs": "doctors", "jr": "junior",
    "sr": "senior", "co": "company", "corp": "corporation", "inc": "incorporated", "ltd": "limited",
    "gen": "general", "col": "colonel", "capt": "captain", "lt": "lieutenant", "sgt": "sergeant",
    "maj": "major", "rev": "reverend", "hon": "honorable", "esq": "esquire", "ft": "fort", "mt": "mount",
    "prof": "professor", "gov": "governor", "sen": "senator", "rep": "representative", "ave": "avenue",
    "rd": "road", "blvd": "boulevard", "dept": "department", "vs": "versus", "etc": "et cetera",
    "approx": "approximately", "jan": "january", "feb": "february", "mar": "march", "apr": "april",
    "aug": "august", "sept": "september", "sep": "september", "oct": "october", "nov": "november",
    "dec": "december",
}
_ABBREV_RE = re.compile(r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.IGNORECASE)
_DOTTED = [(re.compile(r"\be\.g\.", re.IGNORECASE), "for example"), (re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
           (re.compile(r"\b([ap])\.m\.", re.IGNORECASE), r"\1 m"), (re.compile(r"\bU\.S\.A\."), "u s a"),
           (re.compile(r"\bU\.S\.", re.IGNORECASE), "u s"), (re.compile(r"\bNo\.(?=\s*\d)", re.IGNORECASE), "number"),
           (re.compile(r"#(?=\d)"), "number ")]
_SAINT_RE = re.compile(r"\bSt\.(?=\s+[A-Z])")
_STREET_RE = re.compile(r"\b([A-Z][a-z]+)(\s+)St\.?(?=\s|$|[.,;:!?)])")
_SAINT_PLAIN_RE = re.compile(r"\bSt\.", re.IGNORECASE)

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}
_SCALE_WORDS = r"(thousand|million|billion|trillion)"
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d+)(?:\.(\d+))?(?:\s+" + _SCALE_WORDS + r"\b)?", re.IGNORECASE)
_GROUPED_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_MONTH_DAY_RE = re.compile(r"\b(" + _MONTHS + r")\.?\s+(\d{1,2})\b(?!\s*[:%]|[.,]\d)", re.IGNORECASE)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_YEAR_RANGE_RE = re.compile(r"\b(1\d{3}|2\d{3})\s?[-]\s?(1\d{3}|2\d{3})\b")
_DECIMAL_RE = re.compile(r"(?<![\d.])(\d*)\.(\d+)\b")
_NEGATIVE_RE = re.compile(r"(?<![\w-])-(\d)")
_INTEGER_RE = re.compile(r"\d+")


def _currency(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole, frac, scale = int(m.group(2)), m.group(3), m.group(4)
    if scale:  # "$2.5 million" -> "two point five million dollars"
        amount = decimal(m.group(2), frac) if frac else cardinal(whole)
        return f"{amount} {scale.lower()} {many}"
    cents = int((frac + "0")[:2]) if frac else 0
    parts = []
    if whole or not cents:
        parts.append(f"{cardinal(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match[str]) -> str:
    h, mins = int(m.group(1)), int(m.group(2))
    if h > 24 or mins > 59:
        return f"{cardinal(h)} {cardinal(mins)}"
    if mins == 0:
        return f"{cardinal(h)} o'clock"
    return f"{cardinal(h)} oh {cardinal(mins)}" if mins < 10 else f"{cardinal(h)} {cardinal(mins)}"


def _month_day(m: re.Match[str]) -> str:
    day = int(m.group(2))
    return f"{m.group(1)} {ordinal(day)}" if 1 <= day <= 31 else m.group(0)


def _integer(m: re.Match[str]) -> str:
    s = m.group(0)
    if len(s) > 1 and s.startswith("0"):
        return " ".join(digits(s))
    if len(s) > 15:
        return " ".join(digits(s))
    n = int(s)
    return year(n) if 1000 <= n <= 2999 and len(s) == 4 else cardinal(n)


def _street(m: re.Match[str]) -> str:
    rest = m.string[m.end():]
    full_stop = m.group(0).endswith(".") and (not rest.strip() or re.match(r"\s+[A-Z]", rest) is not None)
    return m.group(1) + m.group(2) + "street" + ("." if full_stop else "")


def _sub(pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], text: str) -> str:
    return pattern.sub(repl, text)


def to_ascii(text: str) -> str:
    for k, v in _ASCII.items():
        text = text.replace(k, v)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c) and (c.isascii() or c in "£€"))


def expand_abbreviations(text: str) -> str:
    text = _sub(_SAINT_RE, "saint", text)
    text = _sub(_STREET_RE, _street, text)
    text = _sub(_SAINT_PLAIN_RE, "saint", text)
    for pattern, repl in _DOTTED:
        text = pattern.sub(repl, text)
    return _ABBREV_RE.sub(_abbreviation, text)


def _abbreviation(m: re.Match[str]) -> str:
    # the period of an abbreviation that ends the text ends the sentence too
    return _ABBREVIATIONS[m.group(1).lower()] + ("." if not m.string[m.end():].strip() else "")


def expand_numbers(text: str) -> str:
    text = _sub(_CURRENCY_RE, _currency, text)
    text = _sub(_GROUPED_RE, lambda m: cardinal(int(m.group(0).replace(",", ""))), text)
    text = _sub(_PERCENT_RE, lambda m: m.group(1) + " percent", text)
    text = _sub(_ORDINAL_RE, lambda m: ordinal(int(m.group(1))), text)
    text = _sub(_MONTH_DAY_RE, _month_day, text)
    text = _sub(_TIME_RE, _time, text)
    text = _sub(_YEAR_RANGE_RE, lambda m: f"{year(int(m.group(1)))} to {year(int(m.group(2)))}", text)
    text = _sub(_DECIMAL_RE, lambda m: decimal(m.group(1), m.group(2)), text)
    text = _sub(_NEGATIVE_RE, lambda m: "minus " + m.group(1), text)
    return _sub(_INTEGER_RE, _integer, text)


_SYMBOL_WORDS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "/": " ",
                 "*": " ", "_": " ", "|": " ", "~": " ", "^": " ", "\\": " ", "<": " ", ">": " ", "#": " "}
_DROP = str.maketrans({c: None for c in "\"()[]{}`"})
_KEEP_RE = re.compile(r"[^a-z !',\-.:;?]")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([!,.:;?])")
_REPEATED_PUNCT_RE = re.compile(r"([!,.:;?])[!,.:;?]+")
_DASHES_RE = re.compile(r"\s*-{2,}\s*|\s+-\s+")
_STRAY_HYPHEN_RE = re.compile(r"(?<![a-z])-|-(?![a-z])")
_SPACES_RE = re.compile(r"\s+")


def clean_punctuation(text: str) -> str:
    """Lowercase text to the character set: letters, space, ! ' , - . : ; ?"""
    text = text.translate(_DROP)
    text = _DASHES_RE.sub(", ", text)
    for k, v in _SYMBOL_WORDS.items():
        text = text.replace(k, v)
    text = _KEEP_RE.sub(" ", text.lower())
    text = _STRAY_HYPHEN_RE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = _REPEATED_PUNCT_RE.sub(lambda m: "." if "." in m.group(0) and m.group(1) == "." else m.group(1), text)
    text = _SPACES_RE.sub(" ", text).strip()
    return text.lstrip("!,.:;? ")


def normalize(text: str) -> str:
    """Raw English text -> the lowercase spoken form (see the module docstring)."""
    text = to_ascii(text).replace("&", " and ")
    text = expand_abbreviations(text)
    text = expand_numbers(text)
    return clean_punctuation(text)
