"""How the pipeline shares the CPU between torch's threads (the model) and the other stages.

Measured on the 2-core machines (bench/throughput.py, 12 × 12 MP, quiet machine): torch on both
cores beside one decode and one finish thread gave 0.98–1.01 images/s, torch on one core
0.78, for the same CPU seconds per image; making the decode and finish threads nicer changed
nothing. On a heavily loaded machine the OpenMP team of 2 suffers (its threads wait for each
other at every barrier while one is preempted), but that costs less than leaving a core idle
on a quiet one. Above 2 cores a quarter is left to decode and finish (not measured: no bigger
machine was at hand).
"""

from __future__ import annotations

import os
import threading

import cv2
import torch


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def model_threads_for(device: torch.device, cores: int | None = None) -> int | None:
    """torch intra-op threads for the model stage; ``None`` on a GPU (torch's default is fine there)."""
    if device.type != "cpu":
        return None
    cores = cores or cpu_count()
    return max(1, cores - cores // 4)


_setting = threading.Lock()


def use_cpu_threads(count: int) -> None:
    """Set torch's intra-op threads for the calling thread (OpenMP keeps the count per thread).

    torch also keeps the last count that *any* thread set, and hands it to each thread at that
    thread's first parallel operation (its lazy start-up, which ``get_num_threads`` triggers),
    overriding what the thread had set itself. So the count is set and taken up at once, under
    a lock: otherwise the finish thread's 1 could become the model thread's count.
    """
    with _setting:
        torch.set_num_threads(max(1, count))
        torch.get_num_threads()


def single_threaded_opencv() -> None:
    """OpenCV's own pool would compete with torch's; the stages already run in parallel threads."""
    cv2.setNumThreads(1)
