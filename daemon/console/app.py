"""The console's ASGI application: Starlette routes, Jinja2 templates, vendored HTMX.

Server-rendered pages that work offline (no CDN, no web fonts, no build step). Each page lives
in its own module and contributes its routes here.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from daemon.config import is_loopback
from daemon.console import batch, failures, files, overview, review, tryout
from daemon.console.context import ConsoleContext
from daemon.console.security import ConsoleGuard, csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["csrf_token"] = csrf_token


def build_app(ctx: ConsoleContext) -> Starlette:
    """The whole console for ``ctx``."""

    routes = [
        *overview.routes(ctx),
        *files.routes(ctx),
        *failures.routes(ctx),
        *review.routes(ctx),
        *tryout.routes(ctx, templates),
        *batch.routes(ctx, templates),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        Mount("/metrics", app=make_asgi_app(ctx.registry), name="metrics"),
    ]
    # Every request passes the token, Host and CSRF rules first (daemon/console/security.py).
    # The address is not reloadable: what it was at start is what the socket is bound to.
    settings = ctx.config().console
    on_network = settings is not None and not is_loopback(split_host(settings.listen))
    guard = Middleware(ConsoleGuard, token=lambda: _token(ctx), on_network=on_network)
    app = Starlette(routes=routes, middleware=[guard])
    app.state.ctx = ctx
    return app


def _token(ctx: ConsoleContext) -> str | None:
    settings = ctx.config().console
    return settings.token if settings is not None else None


def split_host(listen: str) -> str:
    """The host of ``host:port`` (``[v6]:port`` for IPv6)."""
    return listen.rpartition(":")[0].strip("[]")
