"""JSON text read for masking, however deep it nests: what it holds, or that it is not JSON.

``json.loads`` recurses once a level and raises RecursionError past Python's limit: about
a thousand brackets, fewer on a deep stack. Masking must never fail on a text, so
``read_json`` cuts the parts nested past the depth a Redactor reads (``MAX_DEPTH``) out of
the text before it parses it, each given as a stand-in, and never raises.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["NOT_JSON", "read_json"]


class _NotJson:
    """The type of ``NOT_JSON``."""

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJson()
"""What ``read_json`` gives for a text that is not JSON: it is masked as text."""

_OPEN_CLOSE_OR_QUOTE = re.compile(r'[\[\]{}"]')
# The rest of a string after its opening quote, up to its closing one: one way only to
# read it, so a text with no closing quote is read once to its end, never again.
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def read_json(text: str, room: int, stand_in: Any) -> Any:
    """What JSON ``text`` holds, each array or object nested more than ``room`` levels deep
    given as ``stand_in`` (so none with ``room`` 0 or less), or ``NOT_JSON``."""
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON
    except RecursionError:
        pass  # past the parser's reach: parsed again without what lies too deep
    cut = _cut(text, room, json.dumps(stand_in))
    if cut is None:
        return NOT_JSON
    try:
        return json.loads(cut)
    except ValueError:
        return NOT_JSON
    except RecursionError:  # a stack already near its limit: nothing of it is read
        return stand_in


def _cut(text: str, room: int, stand_in: str) -> str | None:
    """``text`` with each array or object nested deeper than ``room`` replaced by the JSON
    text ``stand_in``; None if its brackets or quotes do not pair up (it is no JSON). One
    pass, in time linear in the text."""
    kept: list[str] = []
    depth, cut_from, taken, at = 0, -1, 0, 0
    while (token := _OPEN_CLOSE_OR_QUOTE.search(text, at)) is not None:
        char, where = token.group(), token.start()
        at = where + 1
        if char == '"':
            rest = _STRING_REST.match(text, at)
            if rest is None:
                return None
            at = rest.end()
        elif char in "[{":
            depth += 1
            if depth == max(room, 0) + 1:
                cut_from = where
        else:
            if depth == max(room, 0) + 1:
                kept += (text[taken:cut_from], stand_in)
                taken = at
            depth -= 1
            if depth < 0:
                return None
    if depth:
        return None
    kept.append(text[taken:])
    return "".join(kept)
