"""The C heap between files: the large buffers one file frees are kept for the next (glibc).

Every image allocates the same large buffers afresh: the model's activations (16-128 MiB each at
1024²) and the finish's bands. glibc serves an allocation above its mmap threshold (which adapts,
up to 32 MiB) with a new mapping and unmaps it when it is freed, so the kernel page-faults and
zeroes every one of those pages again on every image. Measured with ``hotmatte process`` on
12 × 12 MP JPEG → PNG, 2 cores (AMD EPYC, AVX2), two alternating runs each: wall 41.5 / 41.8 s →
35.2 / 35.6 s, system CPU 11.3 → 1.3-1.4 s, minor page faults 3.44 M → 0.32 M, peak RSS
1.27 → 1.40-1.44 GB.

Raising the thresholds alone is not enough: each pipeline thread gets an arena of its own, whose
heaps grow to 64 MiB at most, so its larger chunks are still mapped and unmapped (2.9 M faults
measured that way). One arena puts every thread's buffers on the main heap; the stages allocate
few, large blocks, so its lock is not contended.

When the pipeline has nothing left in flight, :func:`give_back_free_memory` returns the free
pages to the system, so an idle daemon does not sit on a shoot's high-water mark.

Why our own ctypes calls and not jemalloc or tcmalloc: those replace malloc only through
``LD_PRELOAD`` before the process starts (a systemd unit line, nothing for ``hotmatte process``),
and neither ships on PyPI. ``mallopt`` is glibc's documented knob for exactly this.
"""

from __future__ import annotations

import ctypes
import functools

import structlog

log = structlog.get_logger("hotmatte")

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Allocations below this come from the heap and are reused; larger ones (a whole 100 MP image,
#: say) are still mapped, and unmapped when freed. The model's largest activation is 128 MiB.
MMAP_THRESHOLD_BYTES = 256 << 20
#: Free memory at the top of the heap up to this size is kept after a free (the model's working
#: set is about 1.3 GB at 1024²; a lower limit would hand part of it back after every image).
TRIM_THRESHOLD_BYTES = 1 << 30

#: The C library once keep_freed_buffers has set it to keep freed buffers; None until then.
_keeping_in: ctypes.CDLL | None = None


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (musl and others have no such knobs)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded: the interpreter's own C library
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    return libc


def keep_freed_buffers() -> bool:
    """Make the heap keep freed buffers for reuse; ``True`` if it now does.

    Call it before any thread starts (the arena limit binds only threads that have not allocated
    yet). Where the C library is not glibc, a warning says so and nothing changes; where glibc
    refuses a setting, the warning names it (the settings before it stay) and the idle trim is
    off. Either way files are processed as before, only more slowly.
    """
    global _keeping_in
    libc = _glibc()
    if libc is None:
        log.warning("heap", reuse_freed_memory=False, reason="the C library is not glibc")
        return False
    settings = {
        "arena_max": (_M_ARENA_MAX, 1),
        "mmap_threshold": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        "trim_threshold": (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    }
    refused = [name for name, (param, value) in settings.items() if libc.mallopt(param, value) != 1]
    if refused:
        log.warning("heap", reuse_freed_memory=False, reason=f"mallopt refused {', '.join(refused)}")
        return False
    _keeping_in = libc
    return True


def give_back_free_memory() -> None:
    """Return the heap's free pages to the system, when :func:`keep_freed_buffers` has kept them.

    57-91 ms after a 1024² image on 2 cores (RSS 1.1-1.3 GB → 447 MiB), once per idle spell.
    """
    if _keeping_in is not None:
        _keeping_in.malloc_trim(0)
