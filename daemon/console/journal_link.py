"""The console's own connection to the journal (never the service's; see context.py).

One :class:`~daemon.journal.store.Journal` per console, opened on first use: SQLite in WAL mode
lets it read while the loop writes, and its writes (a retry) wait on SQLite's busy timeout like
any second writer. The Journal object serialises its own statements, so handlers on Starlette's
thread pool can share it.
"""

from __future__ import annotations

import threading

from daemon.console.context import ConsoleContext
from daemon.journal.store import Journal

_lock = threading.Lock()
_open: dict[int, Journal] = {}


def console_journal(ctx: ConsoleContext) -> Journal:
    """The journal connection of ``ctx``'s console (opened once, kept for its life)."""
    key = id(ctx)
    with _lock:
        journal = _open.get(key)
        if journal is None or journal.path != ctx.journal_path:
            journal = _open[key] = Journal.open(ctx.journal_path)
        return journal


def close_console_journal(ctx: ConsoleContext) -> None:
    with _lock:
        journal = _open.pop(id(ctx), None)
    if journal is not None:
        journal.close()
