"""The Files page: every journal row, per folder and state, searchable, paginated.

Each row shows its before/after thumbnails (written at finish time by the pipeline under
``ctx.state_dir/thumbs``, :mod:`daemon.finish.thumbs`: a page view reads a few kB per file,
never an original), its timings and confidence (the thumbnails' meta), and for a failed file
its reason and its ``.error.json`` record from the folder's ``error_dir``. The rows come from
the console's own connection (:func:`daemon.console.journal_link.console_journal`), on either
journal backend (``browse`` of :class:`daemon.journal.backend.JournalBackend`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import cast

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from daemon.beneath import open_regular_file
from daemon.config import Config
from daemon.console.context import ConsoleContext
from daemon.console.journal_link import console_journal
from daemon.console.overview import UNREADABLE
from daemon.errors import HotmatteError
from daemon.finish.failures import record_name
from daemon.finish.thumbs import read_meta, thumb_key, thumb_path
from daemon.journal.store import STATES, Entry, State

PAGE_SIZE = 50
_KEY = re.compile(r"^[0-9a-f]{32}$")
#: The largest error record shown (records are a few hundred bytes; a planted big file is cut).
_RECORD_LIMIT = 16_384


@dataclass(frozen=True)
class FileRow:
    """One journal row as the pages show it."""

    entry: Entry
    key: str
    has_thumbs: bool
    timings: dict[str, float]
    confidence: float | None
    record: str | None


def error_record(config: Config, entry: Entry) -> str | None:
    """The ``.error.json`` written for a failed file, as text (None when there is none)."""
    folder = next((f for f in config.folders if f.name == entry.folder), None)
    if folder is None or entry.state != "failed":
        return None
    relative = PurePosixPath(entry.path)
    try:
        fd = open_regular_file(folder.resolved_error_dir, relative.with_name(record_name(relative.name)))
    except (OSError, HotmatteError, ValueError):
        return None
    try:
        data = os.read(fd, _RECORD_LIMIT)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    try:  # re-indented when it is the JSON we wrote; shown as it is otherwise
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def file_row(ctx: ConsoleContext, entry: Entry, config: Config) -> FileRow:
    directory = ctx.state_dir / "thumbs"
    key = thumb_key(entry.folder, entry.path)
    meta = read_meta(directory, key)
    timings = meta.get("timings")
    return FileRow(
        entry=entry,
        key=key,
        has_thumbs=thumb_path(directory, key, "after").is_file(),
        timings=cast(dict[str, float], timings) if isinstance(timings, dict) else {},
        confidence=entry.confidence,
        record=error_record(config, entry),
    )


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, int(value or default))
    except ValueError:
        return default


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    from daemon.console.app import templates  # the app module imports this one

    async def files(request: Request) -> Response:
        query = request.query_params
        config = ctx.config()
        folders = [f.name for f in config.folders]
        folder = query.get("folder") or None
        if folder not in folders:
            folder = None
        wanted = query.get("state") or None
        state = wanted if wanted in (*STATES, "review") else None
        search = (query.get("q") or "")[:200]
        page = _int(query.get("page"), 1) or 1
        error = ""
        try:
            entries, total = console_journal(ctx).browse(
                folder=folder,
                state=cast("State | None", state),
                search=search,
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
        except UNREADABLE as exc:  # say so in place of the list (a cluster database away, a damaged file)
            entries, total, error = [], 0, f"The journal cannot be read: {exc}"
        rows = [file_row(ctx, e, config) for e in entries]
        pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
        context = {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "folders": folders,
            "folder": folder or "",
            "state": state or "",
            "states": (*STATES, "review"),
            "q": search,
            "error": error,
        }
        return templates.TemplateResponse(request, "files.html", context)

    async def thumb(request: Request) -> Response:
        key = str(request.path_params["key"])
        kind = str(request.path_params["kind"])
        # Only a 32-hex key and a known kind can name a file: nothing from the request is a path.
        if not _KEY.match(key) or kind not in ("before", "after"):
            return Response("no such thumbnail", status_code=404)
        path = thumb_path(ctx.state_dir / "thumbs", key, kind)
        if not path.is_file():
            return Response("no thumbnail yet", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    return [
        Route("/files", files, name="files"),
        Route("/files/thumb/{key}/{kind}", thumb, name="thumb"),
    ]


__all__ = ["PAGE_SIZE", "FileRow", "error_record", "file_row", "routes"]
