"""Links and special files in hot folders are never followed or read: each is recorded once as a failure.

Run as in production: the daemon (and ``hotmatte process``) as the non-root service user, on a
hot folder any studio member may write (root:studio 2775), where a photographer plants links to
the service user's private photo and to /etc/passwd, a link to a folder outside the hot folder
with a photo inside, a FIFO and a socket.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import photo, run_hotmatte, save_jpeg
from tests.service_harness import Daemon, write_config
from tests.service_weights import weights_for_service_user
from tests.studio import Studio

#: What each planted thing must fail with.
PLANTED = {
    "private.jpg": "SymlinkNotFollowed",
    "passwd.jpg": "SymlinkNotFollowed",
    "pipe.jpg": "NotARegularFile",
    "sock.jpg": "NotARegularFile",
}
ARRIVING = {"linked": "SymlinkNotFollowed", "late.jpg": "SymlinkNotFollowed"}


@pytest.fixture
def weights_env(studio: Studio, weights_dir: Path) -> dict[str, str]:
    """``HOTMATTE_WEIGHTS`` for the service user (tests/service_weights.py)."""
    return {"HOTMATTE_WEIGHTS": str(weights_for_service_user(studio))}


def _small_jpeg(path: Path, name: str = "astronaut") -> Path:
    return save_jpeg(path, photo(name)[:192, :256])


def _private_photo(studio: Studio) -> Path:
    """A photo only the service user may read (0600 in its 0750 home)."""
    home = studio.private("home")
    secret = _small_jpeg(home / "secret.jpg", "coffee")
    studio.chown_to_service(secret)
    os.chmod(secret, 0o600)
    return secret


def _plant(hot: Path, secret: Path) -> None:
    (hot / "private.jpg").symlink_to(secret)
    (hot / "passwd.jpg").symlink_to("/etc/passwd")
    os.mkfifo(hot / "pipe.jpg")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(hot / "sock.jpg"))  # the socket file stays once the socket is closed


def _listing(root: Path) -> list[str]:
    """Everything below ``root`` but the daemon's own bookkeeping (``.hotmatte*`` root markers)."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if not p.name.startswith(".hotmatte")
    )


def _rows(journal: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return {p: (s, c) for p, s, c in db.execute("SELECT path, state, error_class FROM files")}


@pytest.mark.parametrize("observer", ["polling", "native"])
def test_links_fifos_and_sockets_are_recorded_once_and_never_read(
    studio: Studio, observer: str, weights_env: dict[str, str]
) -> None:
    hot, out, errors = studio.shared("hot"), studio.shared("out"), studio.shared("out-errors")
    elsewhere = studio.shared("elsewhere")
    secret = _private_photo(studio)
    _small_jpeg(elsewhere / "before.jpg")
    _plant(hot, secret)
    _small_jpeg(hot / "good.jpg")
    folder = {
        "name": "hot",
        "input": str(hot),
        "output": str(out),
        "error_dir": str(errors),
        "observer": observer,
        "stable_seconds": 0.3,
        "min_age_seconds": 0,
        "poll_interval": 0.3,
    }
    state = studio.private("state")
    config = write_config(studio.root / "hotmatte.yaml", [folder], reconcile_seconds=1)  # journal in state/
    with Daemon(config, env=weights_env, run_as=studio.run_as()) as daemon:
        daemon.wait_for("done", path="good.jpg", timeout=120)
        # Arriving while it runs, so the observer (not only the start-up scan) meets them: a link
        # to a folder outside the hot folder, a photo dropped into that folder, another link.
        (hot / "linked").symlink_to(elsewhere)
        (hot / "late.jpg").symlink_to(secret)
        time.sleep(1.0)
        _small_jpeg(elsewhere / "inside.jpg", "chelsea")
        _small_jpeg(hot / "after.jpg", "chelsea")
        daemon.wait_for("done", path="after.jpg", timeout=60)
        daemon.wait_for("failed", count=len(PLANTED) + len(ARRIVING), timeout=60)
        time.sleep(3.5)  # several reconcile scans and polls pass over them again
        assert daemon.proc.poll() is None
        failed = sorted(e["path"] for e in daemon.named("failed"))
        done = sorted(e["path"] for e in daemon.named("done"))
        assert daemon.terminate() == 0
    expected = {**PLANTED, **ARRIVING}
    assert failed == sorted(expected), "each link and special file is recorded exactly once"
    assert done == ["after.jpg", "good.jpg"], "nothing behind a link is processed"
    rows = _rows(state / "journal.sqlite")
    assert rows == {
        **{name: ("failed", error_class) for name, error_class in expected.items()},
        "good.jpg": ("done", None),
        "after.jpg": ("done", None),
    }
    # Records only: nothing was copied, so neither /etc/passwd nor the private photo left.
    assert _listing(errors) == sorted(f"{name}.error.json" for name in expected)
    for name, error_class in expected.items():
        record = json.loads((errors / f"{name}.error.json").read_text())
        assert record["error_class"] == error_class, record
    assert _listing(out) == ["after.png", "good.png"]


def test_process_reports_links_and_special_files_in_a_folder_walk_and_never_hangs(
    studio: Studio, weights_env: dict[str, str]
) -> None:
    hot, out = studio.shared("hot"), studio.shared("out")
    secret = _private_photo(studio)
    elsewhere = studio.shared("elsewhere")
    _small_jpeg(elsewhere / "inside.jpg")
    _plant(hot, secret)
    (hot / "linked").symlink_to(elsewhere)
    _small_jpeg(hot / "good.jpg")
    args = ("process", "--device", "cpu", "--model-size", 256, "-o", out, hot)
    result = run_hotmatte(*args, env=weights_env, run_as=studio.run_as(), timeout=120)
    assert result.returncode == 1, result.stderr
    failures = sorted(line for line in result.stderr.splitlines() if line.startswith("FAILED"))
    expected = {**PLANTED, "linked": "SymlinkNotFollowed"}
    assert len(failures) == len(expected), result.stderr
    for line, (name, error_class) in zip(failures, sorted(expected.items()), strict=True):
        assert line.startswith(f"FAILED {hot / name}: {error_class}: "), line
    assert _listing(out) == ["good.png"]
