"""Telling systemd how the service is doing (``Type=notify``), in a few lines of our own.

The protocol is one datagram per message on the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). It is small
enough that a dependency (python-systemd, sdnotify) would cost more than it
saves, and the issue asks for none. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("hotmatte.notify")


def _socket_address(raw: str) -> str:
    return "\0" + raw[1:] if raw.startswith("@") else raw


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._address = _socket_address(env["NOTIFY_SOCKET"]) if env.get("NOTIFY_SOCKET") else None
        self.watchdog_interval = _watchdog_interval(env)
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines as one message; True if it was delivered."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(lines).encode())
        except OSError as exc:
            # systemd going away must never take the daemon with it; say so once.
            if not self._failed_once:
                log.warning("notify_failed", error=str(exc))
                self._failed_once = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC is required under Type=notify-reload and harmless under Type=notify.
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


def _watchdog_interval(env: dict[str, str]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or None when not asked."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6
