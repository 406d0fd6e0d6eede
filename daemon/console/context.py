"""What the console's pages may see of the running service, and nothing more.

The console runs on its own thread (uvicorn) inside ``hotmatte run``. It never calls into the
service loop: it reads the journal through its own connection (SQLite or, in cluster mode,
the shared PostgreSQL database), reads the snapshot the loop
publishes, and borrows the engine only for the Try and Batch pages. So a slow page or a crashing
handler can never stop or slow the loop (the product's first promise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from daemon.config import Config
from daemon.journal.backend import JournalBackend
from daemon.matting.engine import MattingEngine


@dataclass
class ConsoleContext:
    """Handed to :func:`daemon.console.app.build_app`; every field is safe to use from any thread."""

    #: The config in force (a reload swaps it; always call, never keep the result).
    config: Callable[[], Config]
    #: Opens the console's own journal connection (never the service's): the SQLite file, or in
    #: cluster mode the shared database as a reader that is not a worker
    #: (:func:`daemon.journal.opening.open_reader`). Called once, on first use.
    open_journal: Callable[[], JournalBackend]
    #: Where the console keeps thumbnails, uploads and Try caches (under the daemon's state dir).
    state_dir: Path
    #: The loop's latest published facts (in flight, stage timings, device, shares): plain data.
    snapshot: Callable[[], dict[str, object]] = dict
    #: The engine the pipeline uses, once loaded (None before): Try and Batch share it.
    engine: Callable[[], MattingEngine | None] = lambda: None
    #: Prometheus metrics served at /metrics.
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
