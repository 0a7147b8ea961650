"""The C library functions Telex Start calls on Linux, declared with their types (the POSIX
counterpart of :mod:`app.system.winapi`; nothing else in the app reaches into a shared library)."""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_DUMPABLE = 4


def forbid_dumping() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: no core file even where a core-handling pipe ignores
    ``RLIMIT_CORE``, and other processes of this user cannot read our memory (``ptrace``,
    ``/proc/<pid>/mem``). ``execve`` makes a program started from here dumpable again.
    Raises OSError when the kernel refuses."""
    if not sys.platform.startswith("linux"):
        raise OSError("prctl: Linux only")
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong)  # int prctl(int option, unsigned long, ...)
    prctl.restype = ctypes.c_int
    if prctl(PR_SET_DUMPABLE, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
