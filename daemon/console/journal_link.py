"""The console's own connection to the journal (never the service's; see context.py).

One journal per console, opened on first use by ``ctx.open_journal``: SQLite in WAL mode lets it
read while the loop writes, and its writes (a retry) wait on SQLite's busy timeout like any
second writer; in cluster mode it is a non-worker :class:`~daemon.journal.cluster.ClusterJournal`
that gives up on a server that went away after :data:`DATABASE_PATIENCE_SECONDS`, so a page
says "the journal cannot be read" instead of hanging (its next request connects again). Both
serialise their own statements, so handlers on Starlette's thread pool can share one.
"""

from __future__ import annotations

import threading

from daemon.console.context import ConsoleContext
from daemon.journal.backend import JournalBackend

#: How long a page waits for a cluster database that stopped answering (see the docstring).
DATABASE_PATIENCE_SECONDS = 5.0

_lock = threading.Lock()
_open: dict[int, JournalBackend] = {}


def console_journal(ctx: ConsoleContext) -> JournalBackend:
    """The journal connection of ``ctx``'s console (opened once, kept for its life)."""
    key = id(ctx)
    with _lock:
        journal = _open.get(key)
        if journal is None:
            journal = _open[key] = ctx.open_journal()
        return journal


def close_console_journal(ctx: ConsoleContext) -> None:
    with _lock:
        journal = _open.pop(id(ctx), None)
    if journal is not None:
        journal.close()
