"""Numbers as English words: cardinals, ordinals, years, decimals (the readings LJSpeech's normalized text uses).

`cardinal(1455)` -> "one thousand four hundred fifty-five"; `year(1455)` -> "fourteen fifty-five";
`ordinal(22)` -> "twenty-second". Tens and units are joined by a hyphen; no "and".
"""

from __future__ import annotations

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}


def _below_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest or not parts:
        parts.append(_below_100(rest))
    return " ".join(parts)


def cardinal(n: int) -> str:
    """0 -> "zero"; 1455 -> "one thousand four hundred fifty-five"; negatives read "minus ..."."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 1000:
        return _below_1000(n)
    if n >= 10**15:
        return " ".join(digits(str(n)))  # too long to read as a number: digit by digit
    parts = []
    for value, name in _SCALES:
        if n >= value:
            parts.append(f"{_below_1000(n // value) if n // value < 1000 else cardinal(n // value)} {name}")
            n %= value
    if n:
        parts.append(_below_1000(n))
    return " ".join(parts)


def ordinal(n: int) -> str:
    """1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth"."""
    words = cardinal(n)
    head, sep, last = max(words.rpartition(" "), words.rpartition("-"), key=lambda p: len(p[0]))
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + sep + last


def year(n: int) -> str:
    """Years as read aloud: 1455 "fourteen fifty-five", 1900 "nineteen hundred", 1905 "nineteen oh five",
    2000 "two thousand", 2007 "two thousand seven", 2019 "twenty nineteen"; outside 1000..2999: cardinal."""
    if not 1000 <= n <= 2999:
        return cardinal(n)
    if n == 2000 or (2000 < n < 2010):
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{_below_100(high)} hundred"
    if low < 10:
        return f"{_below_100(high)} oh {_ONES[low]}"
    return f"{_below_100(high)} {_below_100(low)}"


def digits(s: str) -> list[str]:
    """Digit by digit: "0714" -> ["zero", "seven", "one", "four"]."""
    return [_ONES[int(c)] for c in s]


def decimal(integer: str, fraction: str) -> str:
    """"3", "14" -> "three point one four" (the integer part as a cardinal, the fraction digit by digit)."""
    head = cardinal(int(integer)) if integer else "zero"
    return f"{head} point {' '.join(digits(fraction))}"
