"""The checks a Redactor's detector makes of a candidate before masking it: that a card
number passes Luhn, an IBAN mod-97, and forty characters look like an AWS secret key. A
check keeps ordinary numbers and hashes readable; kept apart from the Redactor itself."""

from __future__ import annotations

import re
import threading

__all__ = ["aws_secret_match", "card_match", "iban_match", "iban_valid", "luhn_valid"]


def luhn_valid(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """True if ``text`` (spaces allowed) is an IBAN whose ISO 13616 mod-97 check holds."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", compact):
        return False
    return int("".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])) % 97 == 1


def card_match(match: re.Match[str]) -> bool:
    """True if a card detector's candidate has a card number's length and passes Luhn."""
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def iban_match(match: re.Match[str]) -> bool:
    """True if an IBAN detector's candidate passes the mod-97 check."""
    return iban_valid(match.group(0))


_AWS_CONTEXT = re.compile(r"(?i)\baws|amazon|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def aws_secret_match(match: re.Match[str]) -> bool:
    """True if forty base64 characters are an AWS secret access key, by their look and
    the text around them."""
    # Forty base64 characters alone could be anything (a git hash is forty hex digits):
    # mixed case and digits, in a text that speaks of AWS, make it a secret access key.
    value = match.group("secret")
    mixed = all(re.search(c, value) for c in ("[a-z]", "[A-Z]", "[0-9]"))
    return mixed and _speaks_of_aws(match.string)


class _Last(threading.local):
    """What ``_speaks_of_aws`` found of the last text it read, in this thread."""

    text: tuple[int, int, int] | None = None
    """The text's id, length and hash: not the text, which may be long and hold secrets."""
    found: bool = False


_LAST = _Last()


def _speaks_of_aws(text: str) -> bool:
    """True if ``text`` speaks of AWS; read once for all the candidates found in it: a
    text of many forty-character words, each of them searching the whole text again,
    took time quadratic in its length."""
    # A string's hash is worked out once and kept on it. Another text, made later where
    # one freed was, is taken for it only if its length and hash are the same too: a
    # chance of one in 2**64.
    seen = (id(text), len(text), hash(text))
    if _LAST.text != seen:
        _LAST.found = _AWS_CONTEXT.search(text) is not None
        _LAST.text = seen
    return _LAST.found
