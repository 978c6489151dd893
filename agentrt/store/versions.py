"""Channel versions in a few characters, for both checkpointers.

LangGraph's savers version each channel with a 49-character string (a zero-padded count,
then a random fraction), written into every checkpoint for every channel and for every node
that ran: on PostgreSQL about half of a checkpoint row's JSON. A version here is the count
alone, after a letter that says how many digits it has.
"""

from __future__ import annotations

__all__ = ["next_version"]


def next_version(current: str | int | None) -> str:
    """The channel version after ``current``: the count in as few digits as it takes, after
    a letter that says how many (``a7``, ``b42``, ``c100``), so versions sort as text in the
    order they were made, which is how LangGraph compares them.

    A version LangGraph's SqliteSaver or PostgresSaver wrote
    (``00000000000000000000000000000042.0.7356...``, a digit first) sorts below every
    letter, so a checkpoint from before reads back and goes on from its count.
    """
    if current is None:
        count = 0
    elif isinstance(current, int):
        count = current
    elif current[:1].isdigit():
        count = int(current.split(".", 1)[0])
    else:
        count = int(current[1:])
    digits = str(count + 1)
    return chr(ord("a") + len(digits) - 1) + digits
