"""errorset.allocator: glibc keeps freed memory for reuse after keep_freed_memory()."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from errorset import allocator, cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process: how a 16 MB block is served (mallinfo2: bytes in fresh mappings, heap size
# after the block is freed). glibc's defaults map it from the OS and unmap it when freed.
_PROBE = """
import ctypes, sys
from errorset import allocator
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
size = 16 << 20
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(size)
ctypes.memset(block, 1, size)
mapped = libc.mallinfo2().hblkhd - mapped
libc.free(block)
print(mapped, libc.mallinfo2().arena)
"""


def _probe(mode: str) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120)
    if "mallinfo2" in done.stderr:  # pragma: no cover - glibc older than 2.33
        pytest.skip("glibc without mallinfo2")
    assert done.returncode == 0, done.stderr
    mapped, heap = done.stdout.split()
    return int(mapped), int(heap)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    assert allocator.keep_freed_memory() and allocator.keep_freed_memory()  # idempotent
    mapped, heap = _probe("default")
    assert mapped >= 16 << 20 and heap < 16 << 20  # a fresh mapping, returned to the OS when freed
    mapped, heap = _probe("keep")
    assert mapped == 0 and heap >= 16 << 20  # from the heap, and still there for the next tensor


@pytest.mark.parametrize(("switch", "calls"), [(None, 1), ("0", 0), ("1", 1)])
def test_the_command_line_keeps_freed_memory_unless_switched_off(monkeypatch, capsys, switch, calls):
    seen = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: seen.append(1) or True)
    if switch is None:
        monkeypatch.delenv(allocator.ENV_SWITCH, raising=False)
    else:
        monkeypatch.setenv(allocator.ENV_SWITCH, switch)
    assert cli.main(["config"]) == 0
    assert len(seen) == calls
