"""A model's answer as the event stream sends it, token by token: masked as its log entry.

A detector finds a secret only in text it has whole, and a model streams its answer in
pieces cut anywhere ("Bear", "er abc", "def123..."): each piece masked alone would give the
secret back once the pieces are joined. So the answer's running text is masked as the
Redactor masks it, pass after pass (``Redactor.passes``: the known and remembered secrets,
then each detector), and only what more text can no longer change is sent.

What can still change is found in each pass's own text (a pass reads what the passes
before it made: a marker, or nothing in drop mode, may join what was apart), with each of
its characters traced back to the stretch of the answer it shows: from the first place
where the pass's pattern matches up to the end of what is settled, or would with more
text (partial matching, which the regex package has and re has not), and from a
candidate the pass's check refused (a check may read the whole text: forty characters
are an AWS key in a text that speaks of AWS, wherever it does). What a place before it
shows is sent. An answer that starts as JSON is masked field by field once whole, so none
of it goes before its end. When the answer ends, the rest is its log entry's text after
what was sent, so the tokens joined are the entry's text.

An answer ``held`` sends nothing before its end: the tool calls a message carries come
after its text, and one may pass a value of that text in a sensitive field, which makes it
a secret of the entry (``streamed.takes_secrets`` says when a run's tools can).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

import regex

from agentrt.redaction import Detector, Redactor
from agentrt.tracing.shown import shown

__all__ = ["LOOK_SHARE", "AnswerShown"]

LOOK_SHARE = 64
"""An answer is looked at again for what it can send once it grew by this share of its
length (at every piece while it is short): a look reads all of it, so a look at every
piece would cost a long answer the square of its length."""


class AnswerShown:
    """One model answer as the stream sends it: ``add`` each piece as it comes, ``end`` once
    it is whole. What they return, joined, is the answer masked with ``known`` (the secret
    values of the run's log) and the Redactor, as its log entry shows it; at no moment is
    it more than a beginning of that."""

    def __init__(
        self, node: str, redactor: Redactor, known: list[Any], *, held: bool = False
    ) -> None:
        self.node = node
        """The node whose model answers (plan, summarize)."""
        self.redactor = redactor
        self.known = known
        self.held = held
        """True: nothing is sent before the end, which its log entry alone can tell."""
        self.said = ""
        """The answer so far, as the model gave it."""
        self.sent = ""
        """What was sent of it, masked."""
        self._settled = 0
        """How much of ``said`` the sent text shows."""
        self._looked = 0
        """How much of ``said`` there was at the last look."""

    def add(self, text: str) -> str:
        """What to send now that the model said ``text`` next ("" for nothing yet)."""
        self.said += text
        if self.held:
            return ""
        if len(self.said) - self._looked < len(self.said) // LOOK_SHARE:
            return ""  # looked at a moment ago: each look reads all of it
        self._looked = len(self.said)
        if self.said.lstrip()[:1] in ("", "{", "["):
            return ""  # JSON is masked field by field, and a blank start may turn out JSON
        shown_now, settled = self._look()
        if settled <= self._settled or not shown_now.startswith(self.sent):
            return ""
        new, self.sent, self._settled = shown_now[len(self.sent) :], shown_now, settled
        return new

    def end(self, whole: str | None = None) -> str:
        """The rest of the answer once it is whole: of ``whole`` (its log entry's text as
        shown), or without one of the answer as shown, what follows what was sent; "" if
        that does not begin with what was sent (the entry is another answer's), and "" for
        an answer held that no entry ends."""
        if whole is None:
            if self.held:
                return ""  # no entry says what its tool calls made secret
            whole = str(shown(self.said, self.redactor, known=self.known))
        if not whole.startswith(self.sent):
            return ""
        new, self.sent, self._settled = whole[len(self.sent) :], whole, len(self.said)
        return new

    def _look(self) -> tuple[str, int]:
        """The answer as shown as far as more text cannot change it, and how much of the
        answer that is."""
        said = self.said
        text, source = said, _Source(list(range(len(said))), list(range(1, len(said) + 1)))
        passes: list[tuple[Detector, str, _Source]] = []
        for one in self.redactor.passes(self.known):
            passes.append((one, text, source))
            text, source = _passed(one, partial(self.redactor.found, one), text, source)
        settled, before = len(said), -1
        while settled != before:  # what one pass cannot settle unsettles the others
            before = settled
            for one, seen, seen_source in passes:
                settled = min(settled, self._open_from(one, seen, seen_source, settled))
        return text[: bisect_right(source.ends, settled)], settled

    def _open_from(self, one: Detector, text: str, source: _Source, settled: int) -> int:
        """Where in the answer the first of ``text``'s places that may still change as
        ``one`` passes it begins (``settled`` if none before it): one its pattern matches
        from up to the settled end of ``text``, or would with more, and one its check
        refused."""
        start = bisect_right(source.ends, self._settled)  # what was sent is settled
        end = bisect_right(source.ends, settled)
        matcher = _partial(one.pattern.pattern, one.pattern.flags)
        for at in range(start, end):
            if matcher.fullmatch(text, at, end, partial=True) is not None:
                end = at
                break
        if one.check is not None:
            for found in one.pattern.finditer(text, start, end):
                if not one.check(found):
                    return source.starts[found.start()]
        return source.starts[end] if end < len(text) else settled


class _Source:
    """For each character of a pass's text, the stretch of the answer it shows: where it
    starts and ends (a character of a marker shows all the match it stands for)."""

    __slots__ = ("ends", "starts")

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        self.starts = starts
        self.ends = ends


def _passed(
    one: Detector, replace: Callable[[re.Match[str]], str], text: str, source: _Source
) -> tuple[str, _Source]:
    """``text`` as the pass leaves it (``one.pattern.sub(replace)``, as the Redactor does),
    with the source of each of its characters."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    last = 0
    for found in one.pattern.finditer(text):
        begin, end = found.span()
        made = replace(found)
        out.append(text[last:begin])
        starts += source.starts[last:begin]
        ends += source.ends[last:begin]
        if made == found.group(0):  # left as it was: each character its own
            starts += source.starts[begin:end]
            ends += source.ends[begin:end]
        else:
            start = source.starts[begin] if begin < len(text) else _end(source)
            stop = source.ends[end - 1] if end > begin else start
            starts += [start] * len(made)
            ends += [stop] * len(made)
        out.append(made)
        last = end
    out.append(text[last:])
    starts += source.starts[last:]
    ends += source.ends[last:]
    return "".join(out), _Source(starts, ends)


def _end(source: _Source) -> int:
    return source.ends[-1] if source.ends else 0


@lru_cache(maxsize=256)
def _partial(pattern: str, flags: int) -> Any:
    """``pattern`` compiled by the regex package, which can tell a partial match, with its
    repeats greedy: it matches the same texts (laziness only orders the tries), and the
    package finds a partial match after a lazy repeat where there is none ("aws" then any
    thirty characters for the AWS detector), which would hold the answer back."""
    return regex.compile(_greedy(pattern), flags)


_BOUNDS = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")


def _greedy(pattern: str) -> str:
    """``pattern`` with the ``?`` that makes a repeat lazy left out."""
    out: list[str] = []
    at, repeat = 0, False
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":  # an escape: the next character is its own
            piece = pattern[at : at + 2]
        elif char == "[":  # a set, whose characters are all its own
            end = at + 1 + (pattern[at + 1 : at + 2] == "^")
            end += pattern[end : end + 1] == "]"
            while end < len(pattern) and pattern[end] != "]":
                end += 1 + (pattern[end] == "\\")
            piece = pattern[at : end + 1]
        elif char == "?" and repeat:
            at, repeat = at + 1, False
            continue
        elif char in "*+?" and not (char == "?" and pattern[at - 1 : at] == "("):
            at, repeat = at + 1, True
            out.append(char)
            continue
        elif bounds := _BOUNDS.match(pattern, at):
            at, repeat = bounds.end(), True
            out.append(bounds.group())
            continue
        else:
            piece = char
        at, repeat = at + len(piece), False
        out.append(piece)
    return "".join(out)
