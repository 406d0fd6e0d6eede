"""The Failures page: every failed file with its reason; retry one, or all (of a folder).

Retrying runs :func:`daemon.journal.retry.retry_failed`, the code behind ``hotmatte retry``:
the row goes back to pending and the running daemon takes it on its next turn.

``POST /failures/retry`` names the file by its journal ``id`` (what the page sends: it works for
any name, even one that is not UTF-8) or by ``folder`` and ``path`` (for scripts), the path
checked by :func:`daemon.console.paths.folder_file` like every path a request names.
``POST /failures/retry-all`` takes an optional ``folder``. HTMX requests get the refreshed list
back (swapped in place, with a line saying what happened); plain form posts are redirected to
the page, so it also works with JavaScript off.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from daemon.console.context import ConsoleContext
from daemon.console.journal_link import console_journal
from daemon.console.overview import UNREADABLE, failure_row
from daemon.console.paths import folder_file
from daemon.errors import UnsafePath
from daemon.journal.retry import RetryTarget, retry_failed
from daemon.journal.store import Entry

PAGE_SIZE = 100
EMPTY: dict[str, Any] = {"failures": [], "per_folder": {}, "total": 0, "page": 0, "pages": 1}


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    from daemon.console.app import templates  # the app module is loaded by now (it calls us)

    def render(request: Request, notice: str = "", error: str = "", status: int = 200) -> Response:
        folder = request.query_params.get("folder") or None
        try:
            facts = failures_facts(ctx, folder, _page(request))
        except UNREADABLE as exc:  # say so in place of the list; the rest of the console goes on
            facts = {**EMPTY, "folder": folder}
            error = error or f"The journal cannot be read: {exc}"
        name = "failures_table.html" if request.headers.get("HX-Request") else "failures.html"
        facts |= {"notice": notice, "error": error}
        return templates.TemplateResponse(request, name, facts, status_code=status)

    def page(request: Request) -> Response:
        return render(request)

    async def retry_one(request: Request) -> Response:
        async with request.form() as form:
            try:
                target = _one_target(ctx, form)
            except UnsafePath as exc:
                return _refused(request, render, str(exc))
        return _answer(request, render, retry_failed(console_journal(ctx), target))

    async def retry_all(request: Request) -> Response:
        async with request.form() as form:
            folder = _text(form, "folder") or None
        known = {f.name for f in ctx.config().folders} | set(console_journal(ctx).counts())
        if folder is not None and folder not in known:
            return _refused(request, render, f"no folder named {folder!r}")
        return _answer(request, render, retry_failed(console_journal(ctx), RetryTarget(folder)))

    return [
        Route("/failures", page, name="failures"),
        Route("/failures/retry", retry_one, methods=["POST"], name="failures_retry"),
        Route("/failures/retry-all", retry_all, methods=["POST"], name="failures_retry_all"),
    ]


def failures_facts(ctx: ConsoleContext, folder: str | None, page: int) -> dict[str, Any]:
    """What the page shows: one page of failed rows (newest first), per-folder totals."""
    journal = console_journal(ctx)
    per_folder = {name: n["failed"] for name, n in sorted(journal.counts().items()) if n["failed"]}
    total = per_folder.get(folder, 0) if folder is not None else sum(per_folder.values())
    rows = journal.failed(folder, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
    return {
        "failures": [failure_row(e) for e in rows],
        "per_folder": per_folder,
        "folder": folder,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
    }


def _one_target(ctx: ConsoleContext, form: FormData) -> RetryTarget:
    entry_id = _text(form, "id")
    if entry_id:
        entry = console_journal(ctx).get_by_id(int(entry_id)) if entry_id.isdigit() else None
        if entry is None:
            raise UnsafePath(f"no journal row {entry_id!r}")
        return RetryTarget(entry.folder, entry.path)
    folder, path = _text(form, "folder"), _text(form, "path")
    # Refuses unknown folders, ../, absolute paths, links and encoded variants; what passes is
    # the path as the journal keys it (relative to the folder's input).
    folder_file(ctx.config(), folder, path)
    return RetryTarget(folder, path)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _page(request: Request) -> int:
    text = request.query_params.get("page", "0")
    return int(text) if text.isdigit() else 0


def _answer(request: Request, render: Any, retried: list[Entry]) -> Response:
    if not request.headers.get("HX-Request"):
        return RedirectResponse(request.url_for("failures"), status_code=303)
    if not retried:
        return render(request, notice="Nothing to retry: no matching file is failed any more.")
    names = ", ".join(f"{e.folder}/{failure_row(e)['path']}" for e in retried[:3])
    more = f" and {len(retried) - 3} more" if len(retried) > 3 else ""
    return render(request, notice=f"Back to pending: {names}{more}. The daemon takes them on its next turn.")


def _refused(request: Request, render: Any, reason: str) -> Response:
    if request.headers.get("HX-Request"):
        # HTMX swaps only 2xx answers by default; the page shows the refusal in place.
        return render(request, error=f"Refused: {reason}")
    return PlainTextResponse(f"Refused: {reason}", status_code=400)
