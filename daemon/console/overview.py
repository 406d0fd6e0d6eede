"""The Overview page: the whole service at a glance, refreshing itself.

Per folder: files pending, running, done, failed and in review (the journal), files per minute
over the last 10 minutes (done rows whose last change is that recent), share reachability (the
loop's snapshot), free space on each output root (``statvfs``); the pipeline's stage bars with
the bottleneck, the device and model (snapshot); the last failures (journal). In cluster mode
the counts are the whole cluster's, and a table shows each node as ``hotmatte status`` does:
alive or silent, heartbeat age, files running now, done, and taken back from it.

The page is served whole at ``/``; HTMX then swaps in ``/overview/live`` every few seconds (the
same template block), so no JavaScript of ours is involved and it stops cleanly on navigation.
Handlers are plain functions: Starlette runs them on its thread pool, so a slow journal or a
hung share's ``statvfs`` ties up one worker thread, never the event loop or the service.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from daemon.config import Config
from daemon.console.context import ConsoleContext
from daemon.console.journal_link import console_journal
from daemon.errors import DatabaseUnavailable, JournalUnusable
from daemon.journal.cluster import ClusterJournal
from daemon.journal.names import printable
from daemon.journal.store import STATES, Entry
from daemon.matting.weights import resolve_weights_dir

#: The window of "files per minute".
RATE_WINDOW_SECONDS = 600
#: How often the page asks for fresh numbers (the loop publishes its snapshot every 2 s).
REFRESH_SECONDS = 2
FAILURES_SHOWN = 5
#: What a page shows as "the journal cannot be read" rather than a bare 500.
UNREADABLE = (sqlite3.Error, JournalUnusable, DatabaseUnavailable, OSError)


@dataclass(frozen=True)
class FolderRow:
    name: str
    counts: dict[str, int]
    review: int
    per_minute: float
    #: True / False from the loop's snapshot; None before the first snapshot or when not configured.
    reachable: bool | None
    configured: bool


@dataclass(frozen=True)
class Space:
    folder: str
    root: str
    free_bytes: int | None
    total_bytes: int | None
    error: str | None

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.free_bytes is not None and self.total_bytes else 0.0


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    from daemon.console.app import templates  # the app module is loaded by now (it calls us)

    def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "overview.html", readable(lambda: overview_facts(ctx)))

    def live(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "overview_live.html", readable(lambda: overview_facts(ctx))
        )

    return [
        Route("/", page, name="overview"),
        Route("/overview/live", live, name="overview_live"),
    ]


def readable(facts: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``facts()``, or what the page says instead when the journal cannot be read (it keeps
    polling, so it recovers on its own once the journal is back)."""
    try:
        return facts()
    except UNREADABLE as exc:
        return {"error": f"The journal cannot be read: {exc}", "refresh_seconds": REFRESH_SECONDS}


def overview_facts(ctx: ConsoleContext) -> dict[str, Any]:
    """Everything the page shows, as plain data (also what the bench times)."""
    config = ctx.config()
    journal = console_journal(ctx)
    snapshot = ctx.snapshot()
    reachable = snapshot.get("folders")
    reach = reachable if isinstance(reachable, dict) else {}
    counts = journal.counts()
    review = journal.in_review()
    done_recently = journal.done_since(time.time() - RATE_WINDOW_SECONDS)
    configured = [f.name for f in config.folders]
    folders = [
        FolderRow(
            name=name,
            counts={s: counts.get(name, {}).get(s, 0) for s in STATES},
            review=review.get(name, 0),
            per_minute=done_recently.get(name, 0) / (RATE_WINDOW_SECONDS / 60),
            reachable=reach.get(name) if name in reach else None,
            configured=name in configured,
        )
        for name in configured + sorted(set(counts) - set(configured))
    ]
    stages = snapshot.get("stages")
    return {
        "folders": folders,
        "nodes": journal.nodes() if isinstance(journal, ClusterJournal) else None,
        "this_node": config.cluster.node if config.cluster is not None else None,
        "total_per_minute": sum(f.per_minute for f in folders),
        "stages": stages if isinstance(stages, dict) else None,
        "device": snapshot.get("device"),
        "model_size": snapshot.get("model_size"),
        "model": model_label(config),
        "in_flight": snapshot.get("in_flight"),
        "space": free_space(config),
        "failures": [failure_row(e) for e in journal.recent_failures(FAILURES_SHOWN)],
        "refresh_seconds": REFRESH_SECONDS,
        "rate_window_minutes": RATE_WINDOW_SECONDS // 60,
    }


def free_space(config: Config) -> list[Space]:
    """Free space on each folder's output root (an unmounted share says why instead)."""
    spaces = []
    for folder in config.folders:
        root = folder.output
        try:
            st = os.statvfs(root)
        except OSError as exc:
            spaces.append(Space(folder.name, str(root), None, None, exc.strerror or str(exc)))
            continue
        spaces.append(
            Space(folder.name, str(root), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, None)
        )
    return spaces


def failure_row(entry: Entry) -> dict[str, Any]:
    """A failed row as the Overview and Failures pages show it (names printable, time local)."""
    return {
        "id": entry.id,
        "folder": entry.folder,
        "path": printable(entry.path),
        "raw_path": entry.path,
        "error_class": entry.error_class or "",
        "reason": printable(entry.last_error or ""),
        "attempts": entry.attempts,
        "at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.updated_at)),
    }


def model_label(config: Config) -> str:
    """The installed model as its manifest names it (what ``hotmatte --version`` says)."""
    directory: Path = resolve_weights_dir(config.weights).directory
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        return f"{manifest['model']} ({manifest['dtype']})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"no manifest in {directory}"
