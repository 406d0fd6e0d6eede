"""A real ``hotmatte run`` process for tests: config files, its JSON log, signals, memory."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from PIL import Image

from daemon.finish.outputs import TEMP_MARKER
from tests.conftest import HOTMATTE, REPO, SMALL_MODEL_SIZE, photo

Event = dict[str, Any]

#: The small real photo most service tests drop (model at SMALL_MODEL_SIZE: a fraction of a second).
SMALL_PHOTO_SIZE = (192, 128)


def small_photo_jpeg() -> bytes:
    """``astronaut`` at :data:`SMALL_PHOTO_SIZE`, as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(photo("astronaut")).resize(SMALL_PHOTO_SIZE).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


FOLDER_DEFAULTS: dict[str, Any] = {"stable_seconds": 0.5, "min_age_seconds": 0, "poll_interval": 0.5}


def folder_settings(root: Path, name: str, **overrides: Any) -> dict[str, Any]:
    """A hot folder under ``root``: ``root/name`` → ``root/name-out`` (created)."""
    (root / name).mkdir(parents=True, exist_ok=True)
    return {
        "name": name,
        "input": str(root / name),
        "output": str(root / f"{name}-out"),
        **FOLDER_DEFAULTS,
        **overrides,
    }


def write_config(path: Path, folders: list[dict[str, Any]], **settings: Any) -> Path:
    config: dict[str, Any] = {
        "journal": str(path.parent / "state" / "journal.sqlite"),
        "device": "cpu",
        "model_size": SMALL_MODEL_SIZE,
        "reconcile_seconds": 30,
        "drain_timeout_seconds": 60,
        "workers": {"decode": 1, "finish": 1, "queue_size": 4},
        # Off unless a test asks for it: daemons of parallel tests must not fight over one port.
        "console": None,
        "folders": folders,
        **settings,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Daemon:
    """``hotmatte run --config CONFIG`` in a subprocess, its stdout parsed as JSON events."""

    def __init__(
        self, config: Path, env: dict[str, str] | None = None, run_as: dict[str, Any] | None = None
    ) -> None:
        """``run_as``: extra ``Popen`` keywords, e.g. :meth:`tests.studio.Studio.run_as` (service user)."""
        self.proc = subprocess.Popen(
            [*HOTMATTE, "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **(run_as or {}),
        )
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "(not json)", "line": line.rstrip()}
            with self._lock:
                self.events.append(event)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    # --- looking at the log ----------------------------------------------------------------------

    def named(self, name: str, **fields: Any) -> list[Event]:
        with self._lock:
            return [
                e for e in self.events if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
            ]

    def paths(self, name: str, folder: str | None = None) -> list[str]:
        return [e["path"] for e in self.named(name) if folder is None or e.get("folder") == folder]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the readers catch the last lines
                if condition():
                    return
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before {what}\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.tail()}")

    def wait_for(self, name: str, count: int = 1, timeout: float = 60, **fields: Any) -> list[Event]:
        self.wait_until(
            lambda: len(self.named(name, **fields)) >= count, timeout, f"{count}× {name} {fields}"
        )
        return self.named(name, **fields)

    def tail(self, lines: int = 30) -> str:
        with self._lock:
            recent = [json.dumps(e) for e in self.events[-lines:]]
        return "\n".join(["--- stdout ---", *recent, "--- stderr ---", *self.stderr[-lines:]])

    # --- signals and memory ----------------------------------------------------------------------

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def terminate(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def memory_mb(self, field: str = "VmRSS") -> float:
        """``VmRSS`` (now) or ``VmHWM`` (peak) of the daemon process, in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"{field} not in /proc/{self.proc.pid}/status")


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARKER in p.name] if root.exists() else []


def assert_cutout_of(output: Path, source_size: tuple[int, int]) -> None:
    """``output`` is a complete, decodable RGBA image the size of its source."""
    with Image.open(output) as image:
        image.load()  # raises on a truncated file
        assert image.mode in ("RGBA", "LA"), f"{output}: mode {image.mode}"
        assert image.size == source_size, f"{output}: {image.size} != {source_size}"
