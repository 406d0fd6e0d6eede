"""The service's side of the console: start it beside the loop, and the plain facts it reads.

The console never calls into the loop (:mod:`daemon.console.context`): it gets the config by a
callable, opens its own journal connection (SQLite, or the cluster's database as a non-worker
reader), and reads a snapshot dict the loop replaces whole every couple of seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from daemon.config import Config
from daemon.console import ConsoleContext, ConsoleServer
from daemon.console.journal_link import DATABASE_PATIENCE_SECONDS
from daemon.journal.backend import JournalBackend
from daemon.journal.opening import open_reader
from daemon.pipeline.stages import Pipeline


def start_console(
    config: Callable[[], Config],
    journal: JournalBackend,
    pipeline: Pipeline | None,
    snapshot: Callable[[], dict[str, object]],
    registry: CollectorRegistry,
) -> ConsoleServer | None:
    """The console serving (None when ``console:`` is off or its address cannot be used)."""
    settings = config().console
    if settings is None:
        return None
    ctx = ConsoleContext(
        config=config,
        # Its own connection: the SQLite file, or the cluster's database as a non-worker reader.
        open_journal=lambda: open_reader(config(), give_up_after=DATABASE_PATIENCE_SECONDS),
        state_dir=journal.path.parent / "console",
        snapshot=snapshot,
        engine=lambda: pipeline.engine if pipeline is not None else None,
        registry=registry,
    )
    server = ConsoleServer(settings, ctx)
    return server if server.start() else None


def snapshot_of(
    pipeline: Pipeline, journal: JournalBackend, reachable: Mapping[str, bool]
) -> dict[str, object]:
    """The loop's facts the console shows, as plain data (a new dict each time, never mutated)."""
    return {
        "in_flight": pipeline.in_flight(),
        "backlog": journal.backlog(),
        "folders": dict(reachable),
        "device": str(pipeline.engine.device),
        "model_size": pipeline.engine.size,
        "stages": pipeline.stage_report().to_dict(),
    }
