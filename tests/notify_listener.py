"""A stand-in for systemd's notify socket: a real AF_UNIX datagram socket, read all the time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class NotifyListener:
    """A real AF_UNIX datagram socket read all the time, as systemd reads it; messages timestamped."""

    address: str
    messages: list[tuple[float, str]] = field(default_factory=list)

    def pings(self, after: float = 0.0) -> list[float]:
        return [t for t, m in self.messages if m == "WATCHDOG=1" and t >= after]

    def statuses(self) -> list[str]:
        return [m for _, m in self.messages if m.startswith("STATUS=")]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(listener.address)
    sock.settimeout(0.2)
    running = threading.Event()
    running.set()

    def listen() -> None:
        while running.is_set():
            try:
                listener.messages.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                continue
            except OSError:
                return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    yield listener
    running.clear()
    reader.join(timeout=5)
    sock.close()
