"""Who may use the console, and CSRF protection for its state-changing requests.

Contract every page follows (enforced here): state changes are POST; a POST carries the
per-browser CSRF value from the ``hotmatte_csrf`` cookie either as the ``X-CSRF-Token`` header
(HTMX requests get it from ``hx-headers`` on <body>, see base.html) or as a ``csrf_token`` form
field (plain forms: ``<input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">``).
"""

from __future__ import annotations

from starlette.requests import Request

CSRF_COOKIE = "hotmatte_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """This browser's CSRF value (set on the request by the middleware, else from its cookie)."""
    return str(getattr(request.state, "csrf_token", "") or request.cookies.get(CSRF_COOKIE, ""))
