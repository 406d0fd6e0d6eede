"""Serve the console on its own thread, beside the service loop.

uvicorn runs its own event loop on a daemon thread. Failing to start (address in use, bad
address) is logged and the daemon carries on without a console: the console is a window onto
the work, never a reason to stop it.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import structlog
import uvicorn

from daemon.config import Console
from daemon.console.app import build_app
from daemon.console.context import ConsoleContext
from daemon.console.journal_link import close_console_journal

log = structlog.get_logger("hotmatte")


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ConsoleServer:
    """uvicorn on a thread; :meth:`start` returns once it listens (or failed to)."""

    def __init__(self, settings: Console, ctx: ConsoleContext) -> None:
        host, port = split_listen(settings.listen)
        self.host = host
        self.port = port
        self._ctx = ctx
        self._server = uvicorn.Server(
            uvicorn.Config(build_app(ctx), host=host, port=port, log_config=None, access_log=False)
        )
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> bool:
        """Bind and serve; False (logged) when the address cannot be used."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            # Listening now, not when uvicorn's loop gets going: early requests wait in the backlog.
            sock.listen(128)
        except OSError as exc:
            sock.close()
            log.error("console_unavailable", listen=f"{self.host}:{self.port}", error=exc.strerror)
            return False
        self.port = sock.getsockname()[1]  # port 0 means "any free port" (tests)
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, name="console", daemon=True)
        self._thread.start()
        log.info("console", url=f"http://{self.host}:{self.port}/")
        return True

    def _serve(self) -> None:
        assert self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except Exception as exc:  # the console died; processing goes on (module docstring)
            log.error("console_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        # Its own journal connection (a cluster database's connection, too) ends with it.
        close_console_journal(self._ctx)
