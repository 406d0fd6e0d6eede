"""Who may use the console, and CSRF protection for its state-changing requests.

Contract every page follows (enforced here): state changes are POST; a POST carries the
per-browser CSRF value from the ``hotmatte_csrf`` cookie either as the ``X-CSRF-Token`` header
(HTMX requests get it from ``hx-headers`` on <body>, see base.html) or as a ``csrf_token`` form
field (plain forms: ``<input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">``).

Rules :class:`ConsoleGuard` enforces on every HTTP request, in this order:

1. With ``console.token`` set, the request carries it: ``Authorization: Bearer <token>`` (scripts,
   Prometheus), the ``hotmatte_token`` cookie, or ``?token=`` once (a GET answered with a redirect
   that stores the cookie, so the token does not stay in the address bar or the history).
   Anything else is 401. The config refuses a non-loopback ``listen`` without a token
   (:func:`daemon.config.Console`), so the daemon never starts an open console on a network.
2. Without a token (loopback only), the ``Host`` header must name a loopback host: a web page on
   another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) gets 403, not our pages.
3. POST, PUT, PATCH and DELETE: an ``Origin`` header, when sent, is this console's own; the CSRF
   value sent equals the cookie's (double submit). Both cookies are ``SameSite=Strict``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.config import is_loopback

CSRF_COOKIE = "hotmatte_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_COOKIE = "hotmatte_token"
TOKEN_PARAM = "token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(request: Request) -> str:
    """This browser's CSRF value (set on the request by the middleware, else from its cookie)."""
    return str(getattr(request.state, "csrf_token", "") or request.cookies.get(CSRF_COOKIE, ""))


def _host_of(header_host: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` → ``::1``)."""
    if header_host.startswith("["):
        return header_host[1 : header_host.find("]")] if "]" in header_host else header_host
    return header_host.rsplit(":", 1)[0] if header_host.count(":") == 1 else header_host


def _same(given: str | None, expected: str) -> bool:
    # Constant time, so the token cannot be guessed a character at a time from response timings.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _refuse(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _cookie_header(name: str, value: str) -> bytes:
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    cookie[name]["path"] = "/"
    cookie[name]["httponly"] = True
    cookie[name]["samesite"] = "Strict"
    return cookie.output(header="").strip().encode("latin-1")


class ConsoleGuard:
    """ASGI middleware applying the module's rules to every HTTP request (websockets are refused)."""

    def __init__(self, app: ASGIApp, token: Callable[[], str | None], on_network: bool = False) -> None:
        self.app = app
        #: Read per request: a reload (SIGHUP) that changes the token applies at once.
        self.token = token
        #: Bound to a non-loopback address: no request passes without a token, even if a reload
        #: that moved ``listen`` back to loopback dropped it (the socket stays where it was).
        self.on_network = on_network

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets in the console; closing without accepting refuses one
        request = Request(scope)
        refusal = self._check_access(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        cookie = request.cookies.get(CSRF_COOKIE, "")
        fresh = "" if cookie else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = cookie or fresh
        if request.method not in SAFE_METHODS:
            receive, refusal = await self._check_csrf(request, cookie, receive)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"set-cookie", _cookie_header(CSRF_COOKIE, fresh)),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _check_access(self, request: Request) -> Response | None:
        """Rules 1 and 2: the response refusing the request, or None to let it through."""
        expected = self.token()
        if not expected and self.on_network:
            return _refuse(401, "This console listens on a network and no console.token is set.")
        if not expected:
            if not is_loopback(_host_of(request.headers.get("host", ""))):
                return _refuse(403, "This console answers only to localhost addresses.")
            return None
        query = request.query_params.get(TOKEN_PARAM)
        if query is not None and request.method == "GET" and _same(query, expected):
            # Store it in a cookie and drop it from the address (history, screenshots, Referer).
            rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != TOKEN_PARAM])
            target = request.url.path + (f"?{rest}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.raw_headers.append((b"set-cookie", _cookie_header(TOKEN_COOKIE, expected)))
            return response
        bearer = request.headers.get("authorization", "")
        given = bearer[7:] if bearer[:7].lower() == "bearer " else request.cookies.get(TOKEN_COOKIE)
        if _same(given, expected):
            return None
        return _refuse(
            401,
            "This console needs its token (console.token in the config): open it once as "
            f"{request.url.path}?token=<token>, or send 'Authorization: Bearer <token>'.",
        )

    async def _check_csrf(
        self, request: Request, cookie: str, receive: Receive
    ) -> tuple[Receive, Response | None]:
        """Rule 3. Returns the receive to pass on (the body may have been read to find the field)."""
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
            return receive, _refuse(403, "Cross-site request refused (its Origin is another site).")
        if not cookie:
            return receive, _refuse(403, "No CSRF cookie: reload the page and try again.")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            receive, sent = await _form_field(request.scope, receive, CSRF_FIELD)
        if not _same(sent, cookie):
            return receive, _refuse(403, "CSRF check failed: reload the page and try again.")
        return receive, None


async def _form_field(scope: Scope, receive: Receive, name: str) -> tuple[Receive, str | None]:
    """Read the whole body, find form field ``name`` in it, and give back a receive that replays it.

    Only plain forms get here (HTMX requests carry the header); their bodies are small. A
    multipart upload sent without the header is read into memory once, which is why pages that
    upload use HTMX.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    content_type = Headers(scope=scope).get("content-type", "")
    value: str | None = None
    if content_type.startswith("application/x-www-form-urlencoded"):
        value = dict(parse_qsl(body.decode("latin-1"))).get(name)
    elif content_type.startswith("multipart/form-data"):
        parsed = Request(scope, _once(body))
        async with parsed.form() as form:
            field = form.get(name)
            value = field if isinstance(field, str) else None
    return replay, value


def _once(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
