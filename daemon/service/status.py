"""``hotmatte status``: what the journal says, per folder and state, and the latest failures.

Reads the journal read-only, so it is safe to run while the daemon works. ``--json`` gives the
same content as one JSON object for scripts (:func:`status_document`; its schema is in the
README and versioned by ``schema``).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from daemon.config import Config, load_config
from daemon.errors import ConfigError, DatabaseUnavailable, JournalUnusable
from daemon.journal.backend import JournalBackend
from daemon.journal.cluster import ClusterJournal
from daemon.journal.cluster_db import redacted
from daemon.journal.names import printable
from daemon.journal.store import STATES, Journal, State
from daemon.pipeline.stage_stats import load_report, report_path_for

FAILURES_SHOWN = 10
#: Bumped when a key of the ``--json`` document changes meaning or goes away (adding keys does not).
JSON_SCHEMA = 1


def format_counts(
    counts: dict[str, dict[State, int]], configured: list[str], in_review: dict[str, int] | None = None
) -> list[str]:
    """A fixed-width table: one row per folder (configured ones first, then any left in the journal).

    ``review`` counts the done files whose result went to the folder's review_dir.
    """
    names = configured + sorted(set(counts) - set(configured))
    width = max([len("folder"), *(len(n) for n in names)])
    review = in_review or {}
    lines = [f"{'folder':<{width}}  " + "  ".join(f"{s:>8}" for s in (*STATES, "review"))]
    for name in names:
        per = counts.get(name, dict.fromkeys(STATES, 0))
        note = "" if name in configured else "  (no longer configured)"
        cells = [*(per[s] for s in STATES), review.get(name, 0)]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{n:>8}" for n in cells) + note)
    return lines


def format_failures(journal: JournalBackend, limit: int = FAILURES_SHOWN) -> list[str]:
    failures = journal.recent_failures(limit)
    if not failures:
        return ["no failures"]
    lines = [f"last {len(failures)} failure(s), newest first:"]
    for entry in failures:
        # Names that are not UTF-8 are shown with \xNN escapes, never as an encoding error.
        lines.append(f"  {_when(entry.updated_at)}  {entry.folder}/{printable(entry.path)}")
        lines.append(f"      {entry.error_class}: {printable(entry.last_error or '')}")
    return lines


def format_space_waits(journal: JournalBackend) -> list[str]:
    """Folders whose files wait for disk space (a full disk never fails a file: daemon.service.disk_space)."""
    return [
        f"{folder}: {n} file(s) waiting for disk space ({printable(reason)})"
        for folder, (n, reason) in sorted(journal.waiting_for_space().items())
    ]


def render_status(config: Config, journal: JournalBackend) -> str:
    counts = journal.counts()
    configured = [f.name for f in config.folders]
    table = format_counts(counts, configured, journal.in_review())
    lines = [f"journal: {_where(journal)}", *table, *format_space_waits(journal)]
    if isinstance(journal, ClusterJournal):
        lines += ["", *format_nodes(journal)]
    lines += ["", *format_failures(journal)]
    stages = load_report(report_path_for(journal.path))
    if stages is not None:
        lines += [
            "",
            f"pipeline stages (over the last {stages.elapsed_seconds:.0f} s):",
            *stages.format_lines(),
        ]
    return "\n".join(lines) + "\n"


def _where(journal: JournalBackend) -> str:
    if isinstance(journal, ClusterJournal):
        return f"cluster database {redacted(journal.settings.database)}"
    return str(journal.path)


def format_nodes(journal: ClusterJournal) -> list[str]:
    """One line per node: silent for how long (its heartbeat), running now, done, taken back from it."""
    nodes = journal.nodes()
    if not nodes:
        return ["no node has run yet"]
    lines = [
        f"{'node':<16}  {'state':<8}  {'heartbeat':>10}  {'running':>8}  {'done':>8}  {'taken back':>10}"
    ]
    for n in nodes:
        state = "alive" if n["alive"] else "silent"
        lines.append(
            f"{n['node']:<16}  {state:<8}  {n['silent_seconds']:>8.0f} s  {n['running']:>8}  {n['done']:>8}"
            f"  {n['taken_back']:>10}"
        )
    return lines


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def status_document(config: Config, journal: JournalBackend) -> dict[str, object]:
    """What :func:`render_status` shows, as plain data (the ``--json`` schema in the README)."""
    counts = journal.counts()
    configured = [f.name for f in config.folders]
    review = journal.in_review()
    folders = [
        {
            "name": name,
            "configured": name in configured,
            **counts.get(name, dict.fromkeys(STATES, 0)),
            "review": review.get(name, 0),
        }
        for name in configured + sorted(set(counts) - set(configured))
    ]
    failures = [
        {
            "folder": e.folder,
            "path": printable(e.path),  # \xNN for bytes that are not UTF-8
            "error_class": e.error_class,
            "reason": e.last_error,
            "attempts": e.attempts,
            "at": _when(e.updated_at),
        }
        for e in journal.recent_failures(FAILURES_SHOWN)
    ]
    stages = load_report(report_path_for(journal.path))
    document: dict[str, object] = {
        "schema": JSON_SCHEMA,
        "journal": _where(journal),
        "folders": folders,
        "failures": failures,
        "stages": stages.to_dict() if stages is not None else None,
    }
    if isinstance(journal, ClusterJournal):
        document["nodes"] = journal.nodes()
    return document


def show_status(config_path: Path | None, out: TextIO = sys.stdout, *, as_json: bool = False) -> int:
    """Print the status; 0 when shown, 1 when there is no journal yet, 2 on a bad config.

    With ``as_json`` stdout holds the JSON document or nothing (problems go to stderr).
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if config.cluster is not None:
        try:
            cluster = ClusterJournal(config.cluster, config.journal, worker=False)
        except (DatabaseUnavailable, JournalUnusable) as exc:
            print(f"hotmatte: {exc}", file=sys.stderr)
            return 1
        try:
            _show(config, cluster, out, as_json)
        finally:
            cluster.close()
        return 0
    if not config.journal.exists():
        message = f"no journal at {config.journal} yet: the daemon has not run with this config"
        print(message, file=sys.stderr if as_json else out)
        return 1
    try:
        journal = Journal.open_read_only(config.journal)
        try:
            _show(config, journal, out, as_json)
        finally:
            journal.close()
    except sqlite3.Error as exc:
        print(f"cannot read the journal {config.journal}: {exc}", file=sys.stderr)
        return 1
    return 0


def _show(config: Config, journal: JournalBackend, out: TextIO, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(status_document(config, journal), indent=2) + "\n")
    else:
        out.write(render_status(config, journal))
