"""The Redactor: what removes secrets and personal data from content before it leaves a run.

Three ways a value is recognised as sensitive:
- its key name matches a pattern (password, token, api_key, authorization, ...);
- a detector finds it inside text (emails, card numbers that pass the Luhn check, bearer
  tokens, API keys of the common shapes);
- the tool declared the field sensitive (``@tool(sensitive=[...])``).

What happens to it: "mask" (a marker naming the kind), "hash" (a short keyed digest, so
equal values can still be correlated) or "drop" (the field is removed; a secret found in
text is cut out).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from agentrt.errors import ConfigError

__all__ = ["DEFAULT_DETECTORS", "DEFAULT_KEY_PATTERNS", "Detector", "Redactor", "luhn_valid"]

Mode = Literal["mask", "hash", "drop"]
_MODES = ("mask", "hash", "drop")


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


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@dataclass(frozen=True, kw_only=True, slots=True)
class Detector:
    """Finds one kind of sensitive value inside text."""

    kind: str
    """Name shown in the mask, e.g. 'email'."""
    pattern: re.Pattern[str]
    """Candidates."""
    check: Callable[[re.Match[str]], bool] | None = None
    """Optional confirmation of a candidate (the Luhn check for card numbers)."""


DEFAULT_DETECTORS: tuple[Detector, ...] = (
    Detector(
        kind="bearer",
        pattern=re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    ),
    Detector(
        kind="api_key",
        pattern=re.compile(
            r"\b(?:sk|pk|rk)[-_](?:live[-_]|test[-_]|proj[-_])?[A-Za-z0-9_\-]{16,}"
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
            r"|\bxox[abpr]-[A-Za-z0-9\-]{10,}"
            r"|\bAKIA[0-9A-Z]{16}\b"
            r"|\bAIza[0-9A-Za-z_\-]{35}"
        ),
    ),
    Detector(
        kind="email",
        pattern=re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
    ),
    Detector(
        kind="card",
        pattern=re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
        check=_card,
    ),
)
"""Bearer tokens, API keys, emails, card numbers (Luhn-checked), tried in that order."""

DEFAULT_KEY_PATTERNS: tuple[str, ...] = (
    r"pass(word|wd|phrase)?$",
    r"secret",
    r"(^|[-_])token$",
    r"api[-_]?key",
    r"^auth(orization)?$|[-_]auth$",
    r"credential",
    r"private[-_]?key",
    r"cookie",
    r"session[-_]?(id|key|token)?$",
    r"(^|[-_])ssn$",
    r"^(credit[-_]?)?card([-_]?(number|no|num))?$|^pan$",
    r"^cvv$|^cvc$",
)
"""Key names (searched, case-insensitive) whose values are always sensitive."""


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
    """Key of the hash mode's HMAC: set your own so digests cannot be guessed from values."""
    _keys: re.Pattern[str] = field(init=False, repr=False, compare=False)

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
        return key in declared or self._keys.search(key) is not None

    def redact(self, value: Any, *, sensitive: Collection[str] = ()) -> Any:
        """A copy of ``value`` with every sensitive part masked, hashed or dropped.

        ``sensitive`` are field names the tool declared; they apply at any depth.
        """
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if self.sensitive_key(str(key), sensitive):
                    if self.mode != "drop":
                        out[str(key)] = self._replace("field", _as_text(item))
                    continue
                out[str(key)] = self.redact(item, sensitive=sensitive)
            return out
        if isinstance(value, list | tuple):
            return [self.redact(item, sensitive=sensitive) for item in value]
        if isinstance(value, str):
            return self.redact_text(value, sensitive=sensitive)
        return value

    def redact_text(self, text: str, *, sensitive: Collection[str] = ()) -> str:
        """``text`` with detected secrets replaced; JSON text is redacted field by field."""
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and (sensitive or self.key_patterns):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:
                return json.dumps(self.redact(parsed, sensitive=sensitive), sort_keys=True)
        for detector in self.detectors:
            text = detector.pattern.sub(partial(self._found, detector), text)
        return text

    def _found(self, detector: Detector, match: re.Match[str]) -> str:
        if detector.check is not None and not detector.check(match):
            return match.group(0)
        return self._replace(detector.kind, match.group(0))

    def _replace(self, kind: str, value: str) -> str:
        if self.mode == "drop":
            return ""
        if self.mode == "hash":
            digest = hmac.new(self.salt.encode(), value.encode(), hashlib.sha256).hexdigest()
            return f"[{kind}:{digest[:12]}]"
        return f"[REDACTED:{kind}]"

    def filter_logs(self) -> Callable[[Any], bool]:
        """A logging filter that redacts each record's message and exception text."""

        def redacting(record: Any) -> bool:
            message = record.getMessage()
            cleaned = self.redact_text(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text = self.redact_text(str(exc))
                if text != str(exc):
                    # The traceback would print the exception's own message: replace it.
                    record.exc_info = None
                    record.exc_text = f"{type(exc).__name__}: {text}"
            return True

        return redacting


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
