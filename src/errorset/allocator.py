"""The process's memory allocator: keep freed memory for reuse (glibc's malloc).

Nothing here imports torch, so the command line can call it before anything else.
"""

from __future__ import annotations

import ctypes
import platform

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap, not fresh mappings (glibc's largest accepted value on 64-bit)
MMAP_THRESHOLD = 32 << 20
#: free memory at the top of the heap is returned to the OS only beyond this
TRIM_THRESHOLD = 1 << 30
#: environment variable that turns :func:`keep_freed_memory` off for the ``errorset`` command
ENV_SWITCH = "ERRORSET_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS at once.

    torch takes CPU tensors from malloc. By default glibc maps blocks above
    128 KB (a threshold that grows only with the blocks freed) straight from
    the OS and returns the top of the heap once twice that is free, so the
    short-lived tensors of batched work (1.5 MB each for a chunk of 128
    CIFAR images) are mapped and page-faulted afresh, every time: about a
    microsecond per 4 KB page, more in virtual machines. With
    ``M_MMAP_THRESHOLD`` at 32 MB (glibc's maximum) and ``M_TRIM_THRESHOLD``
    at 1 GB they are reused: the corruption suite runs about 1.5x faster on
    the development machine (README, *Speed*). The price: the process keeps
    its peak heap instead of shrinking after it.

    Process-wide. The ``errorset`` command calls it at start (set
    ``ERRORSET_KEEP_FREED_MEMORY=0`` to leave malloc as it is); in a notebook,
    call it once. The same effect from outside Python:
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``.

    Returns:
        True where it took effect (Linux with glibc), False elsewhere.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok_mmap = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(ok_mmap and ok_trim)
