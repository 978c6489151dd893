"""The first process inside a bubblewrap sandbox: fills the working directory, starts the
program and reports how it ended.

Run as ``python -I -S -c <this file's text> STATUS_FD LIFELINE_FD MAX_PROCESSES INPUTS_FD
HANDBACK_FD PROGRAM...``. bubblewrap's own init (PID 1 of the sandbox) reports a program
killed by signal N as exit status 128+N, the same as a program that exits with 128+N; this
launcher writes the real wait status to STATUS_FD, a file agentrt reads afterwards:
``started``, then ``exited <status>``, ``cannot-run <errno> <message>`` or
``cannot-create <index> <message>`` (an input file it could not make). It closes that file
to the program it starts.

The working directory is a tmpfs of the sandbox's own. INPUTS_FD is a file of the call's
files, a JSON list of [relative path, text]: the launcher makes them there, as the user the
program runs as. HANDBACK_FD is a Unix socket: the launcher sends agentrt a descriptor of the
working directory over it, then closes it and INPUTS_FD before the program starts. agentrt
reads the program's files through that descriptor once the sandbox is gone; the tmpfs lives
as long as agentrt holds it, and no longer.

When the program ends, the launcher kills every other process of the sandbox; bwrap's PID 1,
left with no children, exits. LIFELINE_FD is the read end of a pipe whose write end only
agentrt holds: it reads as ended when agentrt is gone, and the launcher kills the program and
the rest just the same. bubblewrap's --die-with-parent ends the sandbox with agentrt too,
but only once its PID 1 has set up: an agentrt killed in that moment would otherwise leave
the program running on its own.

RLIMIT_NPROC is set here, not before bubblewrap: the kernel counts it per user namespace, and
set here it counts the processes of this sandbox's namespace only. Set before bubblewrap, the
count would include every process of the same user on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import sys


def make_inputs(inputs_fd: int, status_fd: int) -> bool:
    """Make the call's files in the working directory; False (reported) if one cannot be."""
    with os.fdopen(inputs_fd, "rb") as f:
        files = json.loads(f.read())
    for index, (name, text) in enumerate(files):
        try:
            parent = os.path.dirname(name)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with open(name, "w", encoding="utf-8") as out:
                out.write(text)
        except (OSError, ValueError) as e:  # ValueError: a name or text that is no UTF-8
            reason = " ".join((getattr(e, "strerror", None) or str(e)).split())
            os.write(status_fd, f"cannot-create {index} {reason}\n".encode())
            return False
    return True


def hand_back(handback: int) -> None:
    """Send agentrt a descriptor of the working directory, and close the socket."""
    with socket.socket(fileno=handback) as sock:
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            socket.send_fds(sock, [b"w"], [here])
        finally:
            os.close(here)


def main(args: list[str]) -> int:
    status_fd, lifeline, max_processes, inputs_fd, handback = (int(a) for a in args[:5])
    argv = args[5:]
    for fd in (status_fd, lifeline):
        os.set_inheritable(fd, False)
    os.write(status_fd, b"started\n")
    if not make_inputs(inputs_fd, status_fd):
        return 126
    hand_back(handback)
    if max_processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    # bwrap adds PWD when it changes directory; the program gets exactly agentrt's environment.
    env = {key: value for key, value in os.environ.items() if key != "PWD"}
    try:
        pid = os.posix_spawnp(argv[0], argv, env)
    except OSError as e:
        os.write(status_fd, f"cannot-run {e.errno} {e.strerror}\n".encode())
        return 127
    try:
        program = os.pidfd_open(pid)
    except OSError:  # before Linux 5.3: no lifeline, only bwrap's --die-with-parent
        ended = True
    else:
        ended = program in select.select([program, lifeline], [], [])[0]  # else agentrt is gone
    status = os.waitpid(pid, 0)[1] if ended else None
    # Everything else in the sandbox, setsid() daemons too: kill(-1) reaches every process
    # of this PID namespace but PID 1 and this one, and bwrap's PID 1 exits once it has no
    # children left. Only where this is PID 2 of a namespace of its own (never on a host,
    # where kill(-1) would reach every process of the user).
    if os.getpid() == 2:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
    if status is None:
        return 1
    os.write(status_fd, f"exited {status}\n".encode())
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
