"""A seccomp filter for job processes: no sockets, no new processes, no exec, no namespaces.

Installed with prctl through ctypes (no extra dependency), after the job process has everything
it needs (its channel is already open). Refused system calls fail with EPERM, so Python raises
PermissionError instead of dying. It is defence in depth under the language layer, and unlike
RLIMIT_NPROC it also holds for root. x86_64 and aarch64 only; elsewhere it is skipped.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
SECCOMP_DATA_NR_OFFSET = 0
SECCOMP_DATA_ARCH_OFFSET = 4

_ARCHES = {
    # machine: (AUDIT_ARCH, {syscall name: number})
    "x86_64": (
        0xC000003E,
        {
            "socket": 41,
            "socketpair": 53,
            "connect": 42,
            "bind": 49,
            "listen": 50,
            "accept": 43,
            "accept4": 288,
            "fork": 57,
            "vfork": 58,
            "clone": 56,
            "clone3": 435,
            "execve": 59,
            "execveat": 322,
            "ptrace": 101,
            "kill": 62,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "bpf": 321,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "io_uring_setup": 425,
            "pidfd_open": 434,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "userfaultfd": 323,
            "perf_event_open": 298,
            "keyctl": 250,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198,
            "socketpair": 199,
            "connect": 203,
            "bind": 200,
            "listen": 201,
            "accept": 202,
            "accept4": 242,
            "clone": 220,
            "clone3": 435,
            "execve": 221,
            "execveat": 281,
            "ptrace": 117,
            "kill": 129,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "bpf": 280,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "io_uring_setup": 425,
            "pidfd_open": 434,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "userfaultfd": 282,
            "perf_event_open": 241,
            "keyctl": 219,
        },
    ),
}


def _instruction(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The BPF program (struct sock_filter[]) for this machine, or None if unsupported."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, syscalls = arch
    numbers = sorted(set(syscalls.values()))
    program = [
        _instruction(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH_OFFSET),
        _instruction(BPF_JEQ_K, 1, 0, audit_arch),
        _instruction(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # a foreign ABI: refuse outright
        _instruction(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR_OFFSET),
    ]
    for index, number in enumerate(numbers):
        # On a match jump to the final "deny" instruction, else test the next number.
        remaining = len(numbers) - index - 1
        program.append(_instruction(BPF_JEQ_K, remaining + 1, 0, number))
    program.append(_instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    program.append(_instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Prepared:
    """The filter built once in the zygote, so a job process only makes two prctl calls."""

    def __init__(self) -> None:
        program = build_filter()
        self.ready = program is not None
        if program is None:
            return
        self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        self.buffer = ctypes.create_string_buffer(program, len(program))
        self.fprog = _SockFprog(len(program) // 8, ctypes.cast(self.buffer, ctypes.c_void_p))
        self.fprog_ref = ctypes.byref(self.fprog)


_prepared: _Prepared | None = None


def prepare() -> None:
    """Build the filter now (in the zygote) rather than in every job process."""
    global _prepared
    _prepared = _Prepared()


def install() -> bool:
    """Install the filter on this process (irreversible). True if installed."""
    if _prepared is None:
        prepare()
    assert _prepared is not None
    if not _prepared.ready:
        return False
    if _prepared.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return _prepared.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _prepared.fprog_ref, 0, 0) == 0
