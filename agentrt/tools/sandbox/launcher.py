"""The first process inside a bubblewrap sandbox: starts the program and reports how it ended.

Run as ``python -I -S -c <this file's text> STATUS_FD LIFELINE_FD MAX_PROCESSES PROGRAM...``.
bubblewrap's own init (PID 1 of the sandbox) reports a program killed by signal N as exit
status 128+N, the same as a program that exits with 128+N; this launcher writes the real wait
status to STATUS_FD, a file agentrt reads afterwards: ``started``, then ``exited <status>`` or
``cannot-run <errno> <message>``. It closes that file to the program it starts.

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
import os
import resource
import select
import signal
import sys


def main(args: list[str]) -> int:
    status_fd, lifeline, max_processes = (int(a) for a in args[:3])
    argv = args[3:]
    for fd in (status_fd, lifeline):
        os.set_inheritable(fd, False)
    os.write(status_fd, b"started\n")
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
