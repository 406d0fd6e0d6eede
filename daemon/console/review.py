"""The Review page: results below ``review_below``, and the operator's decision on each.

Before and after side by side, the after on a checkerboard, white and a colour the operator
picks; Approve, Reject, or Re-run with another profile (:mod:`daemon.finish.decisions` moves the
files, the journal's ``decide`` records it, on either backend: see
:class:`daemon.journal.backend.JournalBackend`). Each action is a POST (CSRF per
:mod:`daemon.console.security`) naming the journal row by id only: every path comes from the
config and the row, none from the request.
"""

from __future__ import annotations

from urllib.parse import quote

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from daemon.config import Folder
from daemon.console.context import ConsoleContext
from daemon.console.files import file_row
from daemon.console.journal_link import console_journal
from daemon.console.overview import UNREADABLE
from daemon.errors import DecisionRefused, HotmatteError
from daemon.finish import decisions
from daemon.journal.store import Entry
from daemon.profiles import BUILTIN_PROFILES

REVIEW_PAGE_SIZE = 20
log = structlog.get_logger("hotmatte")


def _in_review(ctx: ConsoleContext, entry_id: int) -> tuple[Folder, Entry]:
    entry = console_journal(ctx).get_by_id(entry_id)
    if entry is None or entry.state != "done" or not entry.review:
        raise DecisionRefused("this file is no longer waiting for review (decided already, or dropped again)")
    folder = next((f for f in ctx.config().folders if f.name == entry.folder), None)
    if folder is None:
        raise DecisionRefused(f"folder {entry.folder} is no longer in the config")
    return folder, entry


def decide(ctx: ConsoleContext, entry_id: int, action: str, profile: str = "") -> str:
    """Carry out ``action`` (approve, reject, rerun) on a row in review; a line saying what happened."""
    folder, entry = _in_review(ctx, entry_id)
    config, journal = ctx.config(), console_journal(ctx)
    if action == "approve":
        output = decisions.approve(config, folder, entry)
        journal.decide(entry.id, "approve", output=str(output))
        message = f"approved: {entry.path} is now in the output folder"
    elif action == "reject":
        record = decisions.reject(config, folder, entry)
        journal.decide(entry.id, "reject", output=str(record))
        message = f"rejected: {entry.path} is in the error folder with its record"
    elif action == "rerun":
        decisions.rerun(config, folder, entry, profile)
        journal.decide(entry.id, "rerun", profile=profile)
        message = f"{entry.path} runs again with profile {profile}"
    else:
        raise DecisionRefused(f"unknown action {action!r}")
    log.info("review_decision", folder=folder.name, path=entry.path, decision=action, profile=profile or None)
    return message


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    from daemon.console.app import templates  # the app module imports this one

    async def review(request: Request) -> Response:
        config = ctx.config()
        error = request.query_params.get("error", "")[:500]
        try:
            journal = console_journal(ctx)
            entries, total = journal.browse(state="review", limit=REVIEW_PAGE_SIZE)
            latest = journal.decisions(limit=10)
        except UNREADABLE as exc:  # say so in place of the list (a cluster database away, a damaged file)
            entries, total, latest = [], 0, []
            error = error or f"The journal cannot be read: {exc}"
        context = {
            "rows": [file_row(ctx, e, config) for e in entries],
            "total": total,
            "profiles": sorted({*BUILTIN_PROFILES, *config.profiles}),
            "message": request.query_params.get("message", "")[:500],
            "error": error,
            "colour": request.query_params.get("colour", "#3b82f6")[:7],
            "decisions": latest,
        }
        return templates.TemplateResponse(request, "review.html", context)

    async def act(request: Request) -> Response:
        form = await request.form()
        try:
            entry_id = int(str(request.path_params["entry_id"]))
            message = decide(ctx, entry_id, str(form.get("action", "")), str(form.get("profile", "")))
        except (HotmatteError, OSError, ValueError) as exc:
            # Shown on the page, readably; nothing was changed that the message does not say.
            return RedirectResponse(f"/review?error={quote(str(exc))}", status_code=303)
        return RedirectResponse(f"/review?message={quote(message)}", status_code=303)

    return [
        Route("/review", review, name="review"),
        Route("/review/{entry_id:int}", act, methods=["POST"], name="review_act"),
    ]


__all__ = ["decide", "routes"]
