"""The Redactor: what removes secrets and personal data from content before it leaves a run.

Three ways a value is recognised as sensitive:
- its key name matches a pattern (password, token, api_key, authorization, ...);
- a detector finds it inside text (emails, card numbers that pass the Luhn check, IBANs
  that pass mod-97, bearer tokens, Basic credentials, JWTs, API keys of the common shapes
  (agentrt's own too), AWS secret keys, "password: ..." in prose);
- the tool declared the field sensitive (``@tool(sensitive=[...])``); a value known to be
  secret (``known=``, ``remember``) is also cut out wherever text repeats it, as it is or
  as JSON text, a URL or Python's repr spells it (``secret_forms``).

Key names are matched as written and in snake case, so ``accessToken`` is ``access_token``.
A key is text too, whatever its type: an email, a card or a credential used as one is
masked as a value would be, and two keys masked alike both stay, the later with " (2)"
after it.

What happens to it: "mask" (a marker naming the kind), "hash" (a short keyed digest, so
equal values can still be correlated) or "drop" (the field is removed; a secret found in
text is cut out). Redacting twice changes nothing: a marker is never redacted again.

The detectors are ``agentrt.detectors``'s; JSON text is read by ``agentrt.json_text``, no
deeper than MAX_DEPTH, so no text makes masking fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import threading
import traceback
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal
from urllib.parse import quote, quote_plus

from agentrt.checksums import iban_valid, luhn_valid
from agentrt.detectors import DEFAULT_DETECTORS, Detector
from agentrt.errors import ConfigError
from agentrt.json_text import NOT_JSON, read_json

__all__ = [
    "DEFAULT_DETECTORS",
    "DEFAULT_KEY_PATTERNS",
    "MAX_DEPTH",
    "Detector",
    "Redactor",
    "free_key",
    "iban_valid",
    "luhn_valid",
    "repr_forms",
    "secret_forms",
    "secrets_pattern",
]

Mode = Literal["mask", "hash", "drop"]
_MODES = ("mask", "hash", "drop")

# What _replace writes: "[REDACTED:kind]" (mask) or "[kind:digest]" (hash). Met again it is
# left as it is, so content redacted once can pass a Redactor again and keep its digests.
_MARKER = re.compile(r"\[(?:REDACTED:[a-z_]+|[a-z_]+:[0-9a-f]{12})\]")

MIN_KNOWN = 4
"""Known secrets shorter than this are not searched for in text: "1" or "abc" would cut
pieces out of unrelated words and numbers."""

MAX_REMEMBERED = 10_000
"""Values a Redactor keeps from ``remember``; past it the oldest are let go (a provider
that rotates every call would otherwise grow it without end)."""


MAX_NAMES = 4096
"""Field names a Redactor keeps what its detectors made of (past it, the rest are worked
out each time); a name longer than _NAME_KEPT is not kept."""
_NAME_KEPT = 200

MAX_DEPTH = 100
"""How deep a Redactor looks into arrays and objects inside one another (JSON text in a
string counts on): a part nested deeper is masked whole ("nested"), unread (JSON text
too deep for Python's parser is parsed without it), so no content makes it recurse past
Python's limit."""


class _Remembered:
    """Secret values told to a Redactor, and one pattern that finds any of them."""

    def __init__(self) -> None:
        self._values: dict[str, None] = {}
        self._lock = threading.Lock()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            # Too short a value is not looked for (MIN_KNOWN): it would cut up other text.
            new = [
                v
                for v in values
                if isinstance(v, str) and len(v) >= MIN_KNOWN and v not in self._values
            ]
            if not new:
                return
            for value in new:
                self._values[value] = None
            while len(self._values) > MAX_REMEMBERED:
                del self._values[next(iter(self._values))]
            self.pattern = secrets_pattern(self._values)


def secret_forms(value: str) -> tuple[str, ...]:
    """The spellings of a secret to look for in text: as it is, inside JSON text (quotes,
    backslashes and control characters escaped; non-ASCII escaped or as it is; "/" escaped
    or not; escaped twice, as JSON text inside a JSON string), inside a URL
    (percent-encoded in upper or lower case, with "+" or "%20" for a space) and between
    the quotes of Python's repr (``repr_forms``). A tool that returns JSON text, or raises
    an error quoting the URL it called or the value itself with ``!r``, repeats a secret
    in one of these."""
    in_json = json.dumps(value)[1:-1]
    # surrogatepass: a lone surrogate must not make looking for the rest fail.
    in_url = quote(value, safe="", errors="surrogatepass")
    in_form = quote_plus(value, safe="", errors="surrogatepass")
    in_repr = repr_forms(value)
    forms = (
        value,
        in_json,
        json.dumps(value, ensure_ascii=False)[1:-1],
        in_json.replace("/", "\\/"),  # JSON encoders that escape "/" too
        json.dumps(in_json)[1:-1],  # JSON text inside a JSON string (a logged body)
        in_url,
        in_form,
        _LOWER_HEX.sub(lambda hexed: hexed.group().lower(), in_url),  # "%2f" is "%2F"
        _LOWER_HEX.sub(lambda hexed: hexed.group().lower(), in_form),
        *in_repr,
        *(json.dumps(form)[1:-1] for form in in_repr),  # an error's text in a JSON body
    )
    return tuple(dict.fromkeys(forms))


def repr_forms(value: str) -> tuple[str, ...]:
    """How Python's ``repr`` and ``ascii`` spell ``value`` between their quotes: its
    backslashes and unprintable characters escaped (with ``ascii``, non-ASCII too), and its
    "'" escaped or not. repr escapes "'" when ``value`` holds both kinds of quote, or when
    the text it quotes is longer (``repr(f"refused {key!r}")``, which a KeyError's message
    is): that text's repr is here too, ``value`` escaped twice."""
    # A text that holds '"' is quoted with "'" (whose every "'" is escaped): the "'" it
    # closes with, and the '"' before it, are cut off again.
    quoted = [spell(value + '"')[1:-2] for spell in (repr, ascii)]
    bare = [
        "'".join(spell(part + '"')[1:-2] for part in value.split("'")) for spell in (repr, ascii)
    ]
    twice = repr(quoted[0] + '"')[1:-2]
    return tuple(dict.fromkeys((*quoted, *bare, twice)))


_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")


def secrets_pattern(values: Iterable[str], *, whole: bool = False) -> re.Pattern[str] | None:
    """One pattern that finds any of ``values`` in any of its ``secret_forms``, the longest
    first; None if none is MIN_KNOWN characters or more (a shorter one is not looked for).
    ``whole``: not where it would be part of a longer word or number."""
    forms = {f for v in values if len(v) >= MIN_KNOWN for f in secret_forms(v)}
    if not forms:
        return None
    parts = [
        ("(?<![A-Za-z0-9])" if whole and f[0].isalnum() else "")
        + re.escape(f)
        + ("(?![A-Za-z0-9])" if whole and f[-1].isalnum() else "")
        for f in sorted(forms, key=len, reverse=True)
    ]
    return re.compile("|".join(parts))


def free_key(key: str, taken: Container[str]) -> str:
    """``key``, or if a field of that name is ``taken`` already, ``key`` with " (2)",
    " (3)", ... after it: two names masked to the same marker keep both their values."""
    if key not in taken:
        return key
    n = 2
    while f"{key} ({n})" in taken:
        n += 1
    return f"{key} ({n})"


DEFAULT_KEY_PATTERNS: tuple[str, ...] = (
    # "db_pass", and the word with more after it ("password2", "password_confirmation",
    # "passwordHash" as password_Hash) but not run into another word ("passwordless").
    r"pass(word|wd|phrase)?$|pass(word|wd|phrase)s?(?![a-z])",
    r"secret",
    r"(^|[-_])token$",
    r"api[-_]?key",
    r"access[-_]?key",
    r"^((proxy|x)[-_])?auth(orization)?$|[-_]auth$",
    r"credential",
    r"private[-_]?key",
    r"cookie",
    r"session[-_]?(id|key|token)?$",
    r"(^|[-_])ssn$",
    r"^(credit[-_]?)?card([-_]?(number|no|num))?$|^pan$",
    r"^cvv$|^cvc$",
)
"""Key names (searched, case-insensitive, as written and in snake case) whose values are
always sensitive."""

# camelCase and PascalCase to snake case ("accessToken" -> "access_Token", "APIKey" ->
# "API_Key"); spaces and dots too ("access token").
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|[\s.]+")


@dataclass(frozen=True, kw_only=True)
class Redactor:
    """Removes sensitive values from content (dicts, lists, strings) before it is shown."""

    mode: Mode = "mask"
    """mask: a marker naming the kind; hash: a keyed digest; drop: remove it."""
    key_patterns: tuple[str, ...] = DEFAULT_KEY_PATTERNS
    """Regular expressions over key names; a match makes the whole value sensitive."""
    detectors: tuple[Detector, ...] = DEFAULT_DETECTORS
    """What to look for inside text."""
    salt: str = "agentrt"
    """Key of the hash mode's HMAC. A runtime given no Redactor uses its store's own random
    salt; set your own so digests cannot be guessed from values."""
    _keys: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _remembered: _Remembered = field(
        default_factory=_Remembered, init=False, repr=False, compare=False
    )
    _names: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"Redactor mode must be one of {_MODES!r}, got {self.mode!r}")
        try:
            keys = re.compile("|".join(f"(?:{p})" for p in self.key_patterns) or r"(?!)", re.I)
        except re.error as exc:
            raise ConfigError(
                f"a Redactor key pattern is not a regular expression: {exc}"
            ) from None
        object.__setattr__(self, "_keys", keys)

    def sensitive_key(self, key: str, declared: Collection[str] = ()) -> bool:
        """True if a field called ``key`` is sensitive by name or by the tool's declaration."""
        if key in declared or self._keys.search(key) is not None:
            return True
        snake = _WORD_BREAK.sub("_", key)
        return snake != key and self._keys.search(snake) is not None

    def remember(self, values: Iterable[str]) -> None:
        """Secret values to cut out of any text from now on, wherever they stand (marked
        "credential"): the runtime tells it each credential it resolves for a tool. One
        shorter than MIN_KNOWN is let go: "1" or "abc" would cut up unrelated text."""
        self._remembered.add(values)

    def redact(
        self, value: Any, *, sensitive: Collection[str] = (), known: Collection[Any] = ()
    ) -> Any:
        """A copy of ``value`` with every sensitive part masked, hashed or dropped.

        ``sensitive`` are field names the tool declared; they apply at any depth. ``known``
        are values known to be secret (say, a sensitive argument's): wherever text repeats
        one, it is cut out too.
        """
        return self._redact(value, sensitive, _literals(known))

    def redact_text(
        self, text: str, *, sensitive: Collection[str] = (), known: Collection[Any] = ()
    ) -> str:
        """``text`` with detected secrets replaced; JSON text is redacted field by field."""
        return self._text(text, sensitive, _literals(known))

    def passes(self, known: Collection[Any] = ()) -> list[Detector]:
        """What ``redact_text`` looks for in plain text, pass after pass: the ``known`` values
        and the remembered ones (as detectors of "field" and "credential"), then each
        detector; a match becomes what ``found`` makes of it."""
        return [*self._literal(_literals(known)), *self.detectors]

    def _literal(self, known: re.Pattern[str] | None) -> list[Detector]:
        found = [(known, "field"), (self._remembered.pattern, "credential")]
        return [Detector(kind=kind, pattern=p) for p, kind in found if p is not None]

    def _redact(
        self, value: Any, sensitive: Collection[str], known: re.Pattern[str] | None, depth: int = 0
    ) -> Any:
        if isinstance(value, Mapping | list | tuple) and depth >= MAX_DEPTH:
            # Unread, so masked whole: what cannot be looked into is never shown.
            return self._nested()
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = str(key)
                # A name is text too, whatever its type: an email, a card (an int, say) or
                # a credential used as a key.
                shown = self._plain(name, known, name=True)
                secret = self.sensitive_key(name, sensitive)
                if self.mode == "drop" and (secret or shown != name):
                    continue  # a name with its secret cut out would say nothing: drop it all
                if secret:
                    out[free_key(shown, out)] = self._replace("field", _as_text(item))
                else:
                    out[free_key(shown, out)] = self._redact(item, sensitive, known, depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self._redact(item, sensitive, known, depth + 1) for item in value]
        if isinstance(value, str):
            return self._text(value, sensitive, known, depth)
        return value

    def _text(
        self, text: str, sensitive: Collection[str], known: re.Pattern[str] | None, depth: int = 0
    ) -> str:
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            # Read no deeper than _redact would look: what lies past it is masked whole.
            parsed = read_json(stripped, MAX_DEPTH - depth, self._nested())
            if parsed is not NOT_JSON:
                return json.dumps(self._redact(parsed, sensitive, known, depth), sort_keys=True)
        return self._plain(text, known)

    def _nested(self) -> str:
        """What an array or object nested past MAX_DEPTH becomes."""
        return self._replace("nested", "(nested past MAX_DEPTH)")

    def _plain(self, text: str, known: re.Pattern[str] | None, *, name: bool = False) -> str:
        """``text`` with known, remembered and detected secrets replaced (not read as JSON);
        ``name``: it is a field's name."""
        for literal in self._literal(known):
            text = literal.pattern.sub(partial(self.found, literal), text)
        if not name or len(text) > _NAME_KEPT:
            return self._detected(text)
        # The same few names come again in every span and log line, and what the detectors
        # (fixed for this Redactor) make of one never changes: worked out once.
        shown = self._names.get(text)
        if shown is None:
            shown = self._detected(text)
            if len(self._names) < MAX_NAMES:
                self._names[text] = shown
        return shown

    def _detected(self, text: str) -> str:
        for detector in self.detectors:
            text = detector.pattern.sub(partial(self.found, detector), text)
        return text

    def found(self, detector: Detector, match: re.Match[str]) -> str:
        """What ``match`` of ``detector`` becomes (itself, if the detector's check refuses it)."""
        if detector.check is not None and not detector.check(match):
            return match.group(0)
        if "secret" not in detector.pattern.groupindex:
            return self._replace(detector.kind, match.group(0))
        start, end = match.span("secret")
        whole, at = match.group(0), match.start()
        return (
            whole[: start - at]
            + self._replace(detector.kind, match.group("secret"))
            + whole[end - at :]
        )

    def _replace(self, kind: str, value: str) -> str:
        if _MARKER.fullmatch(value):
            return value
        if self.mode == "drop":
            return ""
        if self.mode == "hash":
            digest = hmac.new(self.salt.encode(), value.encode(), hashlib.sha256).hexdigest()
            return f"[{kind}:{digest[:12]}]"
        return f"[REDACTED:{kind}]"

    def redact_record(self, record: logging.LogRecord, *, known: Collection[Any] = ()) -> None:
        """Redact a log record in place, ``known`` secret values cut out too: its message,
        and its exception's whole traceback (with the exceptions it was raised from)."""
        literals = _literals(known)
        try:
            message, broken = record.getMessage(), False
        except Exception:  # a bad format string: show it redacted, never its raw arguments
            message, broken = str(record.msg), True
        cleaned = self._text(message, (), literals)
        if cleaned != message or broken:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            cleaned = self._text(text, (), literals)
            if cleaned != text:
                # A formatter prints exc_text when exc_info is gone, and a handler that
                # reads the exception object itself never gets it.
                record.exc_info, record.exc_text = None, cleaned
        elif record.exc_text:
            record.exc_text = self._text(record.exc_text, (), literals)

    def filter_logs(self) -> Callable[[logging.LogRecord], bool]:
        """A logging filter that redacts each record's message and exception text."""

        def redacting(record: logging.LogRecord) -> bool:
            self.redact_record(record)
            return True

        return redacting


def _literals(known: Collection[Any]) -> re.Pattern[str] | None:
    """One pattern for the known secret values in each of their forms, longest first, not
    inside a longer word."""
    values = {text for v in known for text in _spelled(v)}
    return secrets_pattern((v for v in values if not _MARKER.fullmatch(v)), whole=True)


def _spelled(value: Any) -> tuple[str, ...]:
    """How text repeats a known secret value: a string as it is, a number as Python and JSON
    write it (a whole float as the integer a person says too: 4471.0 is also "4471")."""
    if isinstance(value, str):
        return (value,)
    # True is an int to Python but no secret's text; nor are nan and inf numbers anyone says.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ()
    if isinstance(value, float) and not math.isfinite(value):
        return ()
    whole = isinstance(value, int) or value.is_integer()
    texts = (str(int(value)), repr(value)) if whole else (repr(value),)
    # A number is looked for only with MIN_KNOWN digits or more, its sign, point and a whole
    # float's ".0" not counted: a sensitive 0, 1, -12 or 2.5 would cut those digits out of
    # every count, price and date a run shows, where a pin of 4471 is worth looking for.
    digits = sum(c.isdigit() for c in texts[0].partition("e")[0])
    return texts if digits >= MIN_KNOWN else ()  # _literals makes a set of them


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (RecursionError, ValueError):  # nested past the encoder's reach, or a cycle
        return "(not JSON)"
