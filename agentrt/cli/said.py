"""A line a signal's handler may write: one write(2), taking no lock."""

import contextlib
import os
import sys


def say_from_handler(text: str) -> None:
    """Write ``text`` and a newline to stderr from a signal's handler.

    A handler runs between any two bytecodes of the main thread, which may be inside a
    write to stderr (a log line): the stream's buffer is then held, and writing through it
    again raises "reentrant call" out of the handler, into whatever the thread was doing.
    One write(2) to the descriptor under it takes no lock.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream with no descriptor (a test's)
        fd = 2
    with contextlib.suppress(OSError):  # stderr closed: nothing to tell it
        os.write(fd, f"{text}\n".encode("utf-8", "replace"))
