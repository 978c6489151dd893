"""A sandboxed subprocess runner for tools that run code, and the built-in run_python tool.

Each call gets a fresh working directory (under bubblewrap a tmpfs of workdir_bytes, gone
with the call; walked and removed at any depth, whatever modes the code left), an
environment with nothing of the parent's (no API keys, no tokens), rlimits on CPU seconds,
address space and file size, and a timeout; everything the call started is dead when it
returns. By default the code runs in bubblewrap, with its own PID, network, IPC, UTS and
mount namespaces, no capabilities, read-only binds of only what the interpreter needs, and as
an unprivileged user when agentrt is root (bubblewrap.py says exactly what it can reach); a
per-call cgroup, where one is writable, bounds memory and process count for the whole call
(cgroups.py). Where bubblewrap is missing it refuses, unless the caller opts into the weaker
``SandboxLimits(isolation="landlock")`` (landlock.py says exactly what that leaves open).

    run_sandboxed(argv, files=, limits=)   the runner, for your own code-running tools
    run_python / run_python_tool(limits)   the tool; register it to offer it
    SandboxLimits                          timeout, cpu, memory, processes, disk, isolation, uid
    SandboxResult                          exit status, output, files, isolation and bound used
"""

from agentrt.tools.sandbox.landlock import landlock_abi
from agentrt.tools.sandbox.limits import SandboxLimits, SandboxResult
from agentrt.tools.sandbox.runner import run_sandboxed
from agentrt.tools.sandbox.tool import RunPythonResult, run_python, run_python_tool

__all__ = [
    "RunPythonResult",
    "SandboxLimits",
    "SandboxResult",
    "landlock_abi",
    "run_python",
    "run_python_tool",
    "run_sandboxed",
]
