"""Runs damaged files through the real readers in a separate, memory-capped worker process.

The worker (``python -m tests.io.fuzz_runner``) opens each file named on its stdin with
``open_image``, takes a proxy and every band, and answers one JSON line: ``ok``, or the
exception's class and message, and its peak RSS so far. The parent gives each case a
deadline: a worker that does not answer in time is killed (the case is a ``hang``), one
that dies is a ``crash``; either way a fresh worker takes the next case. The address space
is capped with ``RLIMIT_AS``, so a reader that tries to allocate gigabytes for a hostile
header fails inside the worker (``MemoryError``) instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
MAX_MEGAPIXELS = 4.0  # keeps one case's decode small; bombs are refused from the header anyway
PROXY_SIDE = 64
BAND_ROWS = 16
ADDRESS_SPACE_BYTES = 3 << 30


@dataclass(frozen=True)
class Result:
    outcome: str  # "ok", "module.ExceptionClass", "hang" or "crash"
    project_error: bool  # an exception from daemon.errors (or no exception at all)
    message: str
    max_rss_kb: int
    seconds: float

    @property
    def acceptable(self) -> bool:
        return self.outcome == "ok" or self.project_error


class Worker:
    """A reader worker process, restarted after a hang or crash."""

    def __init__(self, *, timeout: float, address_space: int = ADDRESS_SPACE_BYTES) -> None:
        self._timeout = timeout
        self._address_space = address_space
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        process = subprocess.Popen(
            # The worker caps its own address space first thing (no preexec_fn: unsafe with threads).
            [sys.executable, "-m", "tests.io.fuzz_runner", str(self._address_space)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        if not ready or process.stdout.readline().strip() != "ready":
            process.kill()
            raise RuntimeError("the fuzz worker did not start")
        return process

    def _stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def run(self, path: Path) -> Result:
        if self._process is None:
            self._process = self._start()
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        started = time.monotonic()
        try:
            process.stdin.write(str(path) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            self._stop()
            return Result("crash", False, "worker gone before the case", 0, 0.0)
        ready, _, _ = select.select([process.stdout], [], [], self._timeout)
        if not ready:
            self._stop()
            return Result("hang", False, f"no answer in {self._timeout:g} s", 0, time.monotonic() - started)
        line = process.stdout.readline()
        if not line:
            code = process.wait()
            self._process = None
            return Result("crash", False, f"worker exited with {code}", 0, time.monotonic() - started)
        answer = json.loads(line)
        return Result(
            answer["outcome"],
            answer["project_error"],
            answer["message"],
            answer["max_rss_kb"],
            time.monotonic() - started,
        )


def _exercise(path: Path) -> None:
    from daemon.io.detect import open_image

    reader = open_image(path, max_megapixels=MAX_MEGAPIXELS)
    try:
        reader.proxy(PROXY_SIDE)
        for _ in reader.bands(BAND_ROWS):
            pass
    finally:
        reader.close()


def peak_rss_kb() -> int:
    """This process's own peak RSS (``VmHWM``), in KiB.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that over ``exec`` from the forked
    parent, so a worker started by a pytest that has grown to 760 MB reports 760 MB itself.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _serve(address_space: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    from daemon.errors import HotmatteError

    print("ready", flush=True)
    for line in sys.stdin:
        outcome, project, message = "ok", True, ""
        try:
            _exercise(Path(line.rstrip("\n")))
        except BaseException as exc:
            kind = type(exc)
            outcome = f"{kind.__module__}.{kind.__qualname__}"
            project = isinstance(exc, HotmatteError)
            message = str(exc)[:300]
        peak = peak_rss_kb()
        answer = {"outcome": outcome, "project_error": project, "message": message, "max_rss_kb": peak}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
