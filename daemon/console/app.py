"""The console's ASGI application: Starlette routes, Jinja2 templates, vendored HTMX.

Server-rendered pages that work offline (no CDN, no web fonts, no build step). Each page lives
in its own module and contributes its routes here.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from daemon.console import files, review
from daemon.console.context import ConsoleContext
from daemon.console.security import csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["csrf_token"] = csrf_token


def build_app(ctx: ConsoleContext) -> Starlette:
    """The whole console for ``ctx``."""

    async def overview(request: Request) -> Response:
        return templates.TemplateResponse(request, "overview.html", {"snapshot": ctx.snapshot()})

    routes = [
        Route("/", overview, name="overview"),
        *files.routes(ctx),
        *review.routes(ctx),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        Mount("/metrics", app=make_asgi_app(ctx.registry), name="metrics"),
    ]
    app = Starlette(routes=routes)
    app.state.ctx = ctx
    return app
