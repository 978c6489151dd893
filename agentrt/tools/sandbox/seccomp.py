"""The seccomp filter of a call without a cgroup: memory that no rlimit counts, refused.

RLIMIT_AS bounds what a process maps, but a memfd (``memfd_create``) or a SysV shared memory
segment (``shmget``) holds tmpfs pages through a descriptor or an id, mapped or not: without
a cgroup to count them, one process could hold the host's memory under any memory_bytes. So
where no cgroup bounds the call, bubblewrap loads this filter before the launcher runs:
those calls fail with EPERM (``memfd_secret`` too), and every call of another ABI than the
host's own (i386 or x32 on x86_64, arm32 on aarch64, where the numbers differ) fails with
ENOSYS. What is left to hold memory outside a process's address space is sized: the
sandbox's tmpfs mounts (/tmp, /dev/shm, the working directory) and the kernel's own buffers
(pipes, sockets), which the README names.

A classic BPF program, as bubblewrap's ``--seccomp FD`` takes it: ``struct sock_filter``s.
"""

from __future__ import annotations

import errno
import platform
import struct

REFUSED = ("memfd_create", "memfd_secret", "shmget")
"""The system calls refused (EPERM) where no cgroup bounds the call."""

# machine -> AUDIT_ARCH_* of its own ABI, and the refused calls' numbers there.
_ARCHES = {
    "x86_64": (0xC000003E, (319, 447, 29)),
    "aarch64": (0xC00000B7, (279, 447, 194)),
}
_X32_BIT = 0x40000000  # x86_64's x32 ABI: the same arch, numbers with this bit set
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def memory_filter(machine: str | None = None) -> bytes | None:
    """The filter for this host's (or ``machine``'s) ABI; None where it knows no numbers."""
    found = _ARCHES.get(machine or platform.machine())
    if found is None:
        return None
    arch, numbers = found
    program = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, _ERRNO | errno.ENOSYS),  # another ABI: nothing at all
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch == _ARCHES["x86_64"][0]:
        program += [(_JGE_K, 0, 1, _X32_BIT), (_RET_K, 0, 0, _ERRNO | errno.ENOSYS)]
    # Each refused number jumps past the others and the allow, to the refusal.
    program += [(_JEQ_K, len(numbers) - i, 0, nr) for i, nr in enumerate(numbers)]
    program += [(_RET_K, 0, 0, _ALLOW), (_RET_K, 0, 0, _ERRNO | errno.EPERM)]
    return b"".join(struct.pack("=HBBI", *op) for op in program)
