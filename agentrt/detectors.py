"""What a Redactor looks for inside text: one Detector a kind of secret, and the defaults.

Each pattern takes time linear in the text it searches, whatever the text: a Redactor runs
on goals, tool arguments and results a model or a user may have written to make it slow,
on every surface that shows them. So a pattern begins only where a run of the characters
it matches begins (a lookbehind), or else its unbounded parts never follow one another
with characters both could take; ``tests/test_tracing_redact.py`` times crafted texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agentrt.checksums import aws_secret_match, card_match, iban_match

__all__ = ["DEFAULT_DETECTORS", "Detector"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Detector:
    """Finds one kind of sensitive value inside text."""

    kind: str
    """Name shown in the mask, e.g. 'email'."""
    pattern: re.Pattern[str]
    """Candidates. If it has a group named ``secret``, only that part is replaced and the
    rest (a key name, "password: ") stays readable."""
    check: Callable[[re.Match[str]], bool] | None = None
    """Optional confirmation of a candidate (the Luhn check for card numbers)."""


DEFAULT_DETECTORS: tuple[Detector, ...] = (
    Detector(
        kind="bearer",
        pattern=re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    ),
    Detector(
        # Only from the start of a run of token characters: from every "eyJ" of
        # "eyJ-eyJ-eyJ-..." the run would be read to its end, in quadratic time.
        kind="jwt",
        pattern=re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
        ),
    ),
    Detector(
        kind="api_key",
        pattern=re.compile(
            r"\b(?:sk|pk|rk)[-_](?:live[-_]|test[-_]|proj[-_])?[A-Za-z0-9_\-]{16,}"
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
            r"|\bgithub_pat_[A-Za-z0-9_]{22,}"
            r"|\bxox[abpr]-[A-Za-z0-9\-]{10,}"
            r"|\bAKIA[0-9A-Z]{16}\b"
            r"|\bAIza[0-9A-Za-z_\-]{35}"
            # agentrt's own service keys (agentrt.apikeys): agrt_<12 hex>_<secret>.
            r"|\bagrt_[0-9a-f]{12}_[A-Za-z0-9_\-]{32,}"
        ),
    ),
    Detector(
        # "AWS_SECRET_ACCESS_KEY=...", "aws secret access key: ...". The name's words are
        # single-spaced, and the spaces after it one run: were a run of spaces readable as
        # part of the name, or as either of two runs, each way of sharing it out would be
        # tried (a few thousand spaces took seconds).
        kind="aws_secret",
        pattern=re.compile(
            r"(?i)\baws[\w\- ]{0,30}?secret(?:[\w\-]| (?! )){0,30}?[\"']?\s*(?:[:=]\s*)?[\"']?"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    Detector(
        kind="aws_secret",
        pattern=re.compile(r"(?<![A-Za-z0-9/+=])(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
        check=aws_secret_match,
    ),
    Detector(
        kind="iban",
        pattern=re.compile(
            r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b"
        ),
        check=iban_match,
    ),
    Detector(
        # Only from the start of a run of address characters: trying every position of a
        # long run (a 100 kB argument, say) would take quadratic time.
        kind="email",
        pattern=re.compile(
            r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
        ),
    ),
    Detector(
        kind="card",
        pattern=re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
        check=card_match,
    ),
    Detector(
        # "Proxy-Authorization: Basic dXNlcjpwdw==": the user and password, base64 encoded.
        kind="basic_auth",
        pattern=re.compile(
            r"(?i)authorization[\"']?\s*[:=]\s*[\"']?basic\s+"
            r"(?P<secret>[A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])"
        ),
    ),
    Detector(
        # "password: hunter2", "token=abc", "accessToken: ..." in prose or in a message
        # that quotes a payload; the value ends at a closing quote, or else at a space
        # (not at punctuation: a password may hold any, and more masked beats less).
        # Never inside a marker ("[secret:1a2b...]" is one) nor on a value that is one.
        # A password's name may go on ("password2", "password_confirmation",
        # "passwordHash"), but not run into a word ("passwordless").
        kind="secret",
        pattern=re.compile(
            r"(?i)(?<![\[A-Za-z0-9_-])[A-Za-z_-]{0,40}?"
            r"(?:pass(?:word|wd|phrase)(?:[_-][A-Za-z0-9]+|\d+|(?-i:[A-Z])[A-Za-z0-9]*)?"
            r"|secret|token|api[_-]?key|access[_-]?key)"
            r"(?![A-Za-z0-9])[\"']?\s*[:=]\s*(?P<q>[\"'])?"
            r"(?P<secret>(?!\[)(?(q)[^\"'\n]+|[^\s\"']+))"
        ),
    ),
)
"""Bearer tokens, JWTs, API keys, AWS secret keys, IBANs (mod-97), emails, card numbers
(Luhn), Basic credentials after "Authorization:", and secrets written as "password: ..." in
prose, tried in that order."""
