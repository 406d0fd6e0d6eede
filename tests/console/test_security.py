"""The console's security rules, each against a real server (uvicorn on a port) and a real journal."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from daemon.config import Config, parse_config
from daemon.console import ConsoleContext, ConsoleServer
from daemon.errors import ConfigError
from daemon.journal.opening import open_reader
from daemon.journal.store import Fingerprint, Journal
from tests.conftest import run_hotmatte

TOKEN = "s3cret-token-0123456789"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookie(self, name: str) -> str | None:
        for line in self.headers.get_all("set-cookie") or []:
            found = re.match(rf"{name}=([^;]*)", line)
            if found:
                return found.group(1)
        return None


class Console:
    """A console served on a free port for ``config``, with a journal holding one failed file."""

    def __init__(self, tmp_path: Path, listen: str = "127.0.0.1:0", token: str | None = None) -> None:
        (tmp_path / "hot" / "shoot").mkdir(parents=True, exist_ok=True)
        (tmp_path / "hot" / "shoot" / "a.jpg").write_bytes(b"jpeg")
        (tmp_path / "secret.txt").write_text("secret")
        console = f"console:\n  listen: '{listen}'\n" + (f"  token: {token}\n" if token else "")
        self.config: Config = parse_config(
            f"journal: {tmp_path / 'journal.sqlite'}\n{console}"
            f"folders:\n  - name: hot\n    input: {tmp_path / 'hot'}\n    output: {tmp_path / 'out'}\n",
            tmp_path,
        )
        journal = Journal.open(self.config.journal)
        journal.offer("hot", "shoot/a.jpg", Fingerprint(4, 1, "p", "1"))
        entry = journal.get("hot", "shoot/a.jpg")
        assert entry is not None
        journal.mark_failed(entry.id, "CorruptInput", "truncated")
        self.journal = journal
        ctx = ConsoleContext(lambda: self.config, lambda: open_reader(self.config), tmp_path / "console")
        assert self.config.console is not None
        self.server = ConsoleServer(self.config.console, ctx)
        assert self.server.start()

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read().decode())
        finally:
            connection.close()

    def post_form(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
        form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, form, urlencode(fields))

    def csrf(self, headers: dict[str, str] | None = None) -> str:
        cookie = self.request("GET", "/failures", headers).cookie("hotmatte_csrf")
        assert cookie
        return cookie

    def state(self) -> str:
        entry = self.journal.get("hot", "shoot/a.jpg")
        assert entry is not None
        return entry.state

    def close(self) -> None:
        self.server.stop()
        self.journal.close()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    served = Console(tmp_path)
    yield served
    served.close()


@pytest.fixture
def network_console(tmp_path: Path) -> Iterator[Console]:
    served = Console(tmp_path, listen="0.0.0.0:0", token=TOKEN)
    yield served
    served.close()


# --- loopback by default; a network address needs a token -----------------------------------------


def test_the_console_listens_on_loopback_by_default() -> None:
    config = parse_config("", Path("/tmp"))
    assert config.console is not None and config.console.listen == "127.0.0.1:8765"


def test_a_network_address_without_a_token_is_refused_before_the_daemon_starts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"journal: {tmp_path / 'j.sqlite'}\nconsole:\n  listen: 0.0.0.0:8765\n")
    checked = run_hotmatte("check-config", config)
    assert checked.returncode == 2
    assert "console: listen 0.0.0.0:8765 is not a loopback address: set console.token" in checked.stderr
    run = run_hotmatte("run", "--config", config, timeout=120)
    assert run.returncode == 2 and "set console.token" in run.stderr
    assert not (tmp_path / "j.sqlite").exists()  # refused before anything started


def test_loopback_spellings_need_no_token_and_others_do() -> None:
    for listen in ("127.0.0.1:1", "127.3.2.1:1", "[::1]:1", "localhost:1"):
        parse_config(f"console:\n  listen: '{listen}'\n", Path("/tmp"))
    for listen in ("0.0.0.0:1", "[::]:1", "192.168.1.5:1", ":1", "studio.local:1"):
        with pytest.raises(ConfigError, match=r"set console\.token"):
            parse_config(f"console:\n  listen: '{listen}'\n", Path("/tmp"))


# --- every request checks the token ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/failures", "/overview/live", "/metrics/", "/static/console.css"])
def test_with_a_token_every_request_without_it_is_refused(network_console: Console, path: str) -> None:
    assert network_console.request("GET", path).status == 401
    assert network_console.request("GET", path, {"Authorization": "Bearer wrong-token-000000"}).status == 401
    assert network_console.request("GET", path, {"Cookie": "hotmatte_token=wrong"}).status == 401
    assert network_console.request("GET", path, {"Authorization": f"Bearer {TOKEN}"}).status == 200


def test_a_post_without_the_token_is_refused_even_with_a_valid_csrf_pair(network_console: Console) -> None:
    reply = network_console.post_form(
        "/failures/retry-all", {"csrf_token": "abc"}, {"Cookie": "hotmatte_csrf=abc"}
    )
    assert reply.status == 401
    assert network_console.state() == "failed"


def test_the_token_in_the_address_once_becomes_a_cookie_and_leaves_the_address(
    network_console: Console,
) -> None:
    reply = network_console.request("GET", f"/failures?folder=hot&token={TOKEN}")
    assert reply.status == 303
    assert reply.headers["location"] == "/failures?folder=hot"
    assert reply.cookie("hotmatte_token") == TOKEN
    assert "HttpOnly" in str(reply.headers.get_all("set-cookie"))
    assert "SameSite=Strict" in str(reply.headers.get_all("set-cookie"))
    assert network_console.request("GET", "/", {"Cookie": f"hotmatte_token={TOKEN}"}).status == 200
    assert network_console.request("GET", "/?token=wrong").status == 401


# --- without a token: only loopback Host names (DNS rebinding) ---------------------------------------


def test_without_a_token_a_request_for_another_host_name_is_refused(console: Console) -> None:
    assert console.request("GET", "/", {"Host": "evil.example:8765"}).status == 403
    assert console.request("GET", "/", {"Host": f"localhost:{console.server.port}"}).status == 200
    assert console.request("GET", "/", {"Host": f"[::1]:{console.server.port}"}).status == 200


# --- CSRF ---------------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_cookie_or_value_is_refused(console: Console) -> None:
    assert console.post_form("/failures/retry-all", {}).status == 403
    cookie = {"Cookie": f"hotmatte_csrf={console.csrf()}"}
    assert console.post_form("/failures/retry-all", {}, cookie).status == 403
    assert console.post_form("/failures/retry-all", {"csrf_token": "guess"}, cookie).status == 403
    assert console.post_form("/failures/retry-all", {}, {**cookie, "X-CSRF-Token": "guess"}).status == 403
    assert console.state() == "failed"


def test_a_post_carrying_the_cookie_value_as_field_or_header_goes_through(console: Console) -> None:
    value = console.csrf()
    cookie = {"Cookie": f"hotmatte_csrf={value}"}
    assert console.post_form("/failures/retry-all", {"csrf_token": value}, cookie).status == 303
    assert console.state() == "pending"
    reply = console.post_form(
        "/failures/retry-all", {}, {**cookie, "X-CSRF-Token": value, "HX-Request": "true"}
    )
    assert reply.status == 200 and "Nothing to retry" in reply.body


def test_a_post_from_another_origin_is_refused_even_with_the_csrf_pair(console: Console) -> None:
    value = console.csrf()
    headers = {"Cookie": f"hotmatte_csrf={value}", "X-CSRF-Token": value, "Origin": "http://evil.example"}
    assert console.post_form("/failures/retry-all", {}, headers).status == 403
    assert console.state() == "failed"


def test_state_changes_are_post_only(console: Console) -> None:
    assert console.request("GET", "/failures/retry-all").status == 405
    assert console.request("GET", "/failures/retry?folder=hot&path=shoot/a.jpg").status == 405


def test_the_csrf_cookie_is_same_site_strict_and_set_once(console: Console) -> None:
    reply = console.request("GET", "/")
    assert "SameSite=Strict" in str(reply.headers.get_all("set-cookie"))
    assert console.request("GET", "/", {"Cookie": "hotmatte_csrf=x"}).cookie("hotmatte_csrf") is None


# --- no request parameter names a path outside the folders --------------------------------------------


@pytest.mark.parametrize(
    ("folder", "path"),
    [
        ("hot", "../secret.txt"),
        ("hot", "shoot/../../secret.txt"),
        ("hot", str(Path("/etc/passwd"))),
        ("hot", "%2e%2e/secret.txt"),
        ("hot", "%252e%252e%252fsecret.txt"),
        ("hot", "link/secret.txt"),
        ("../hot", "shoot/a.jpg"),
        ("nope", "shoot/a.jpg"),
    ],
)
def test_a_retry_naming_a_path_outside_the_folder_is_refused(
    console: Console, folder: str, path: str
) -> None:
    hot = console.config.folders[0].input
    if not (hot / "link").exists():
        (hot / "link").symlink_to(hot.parent)
    value = console.csrf()
    fields = {"csrf_token": value, "folder": folder, "path": path}
    reply = console.post_form("/failures/retry", fields, {"Cookie": f"hotmatte_csrf={value}"})
    assert reply.status == 400 and reply.body.startswith("Refused:")
    assert console.state() == "failed"


def test_a_percent_encoded_path_in_the_raw_body_is_refused_after_decoding(console: Console) -> None:
    value = console.csrf()
    body = f"csrf_token={value}&folder=hot&path=" + quote("%2e%2e/secret.txt", safe="")
    headers = {"Cookie": f"hotmatte_csrf={value}", "Content-Type": "application/x-www-form-urlencoded"}
    assert console.request("POST", "/failures/retry", headers, body).status == 400


def test_a_retry_naming_the_file_inside_its_folder_works(console: Console) -> None:
    value = console.csrf()
    fields = {"csrf_token": value, "folder": "hot", "path": "shoot/a.jpg"}
    assert console.post_form("/failures/retry", fields, {"Cookie": f"hotmatte_csrf={value}"}).status == 303
    assert console.state() == "pending"


def test_a_multipart_form_carrying_the_csrf_field_goes_through_and_one_without_it_does_not(
    console: Console,
) -> None:
    value = console.csrf()

    def multipart(fields: dict[str, str]) -> tuple[dict[str, str], str]:
        parts = "".join(
            f'--b0undary\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        headers = {
            "Cookie": f"hotmatte_csrf={value}",
            "Content-Type": "multipart/form-data; boundary=b0undary",
        }
        return headers, parts + "--b0undary--\r\n"

    headers, body = multipart({"folder": "hot"})
    assert console.request("POST", "/failures/retry-all", headers, body).status == 403
    assert console.state() == "failed"
    headers, body = multipart({"csrf_token": value, "folder": "hot"})
    assert console.request("POST", "/failures/retry-all", headers, body).status == 303
    assert console.state() == "pending"
