"""What ``hotmatte run`` prints: console lines for a person at a terminal, JSON for systemd and pipes.

Real daemons, on a real pseudo-terminal (``pty.openpty``) or a real pipe.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from daemon.matting.engine import default_precision
from tests.conftest import HOTMATTE, REPO
from tests.service_harness import Daemon, folder_settings, write_config

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: systemd's markers; a test process may itself run under systemd (CI), so they are removed.
SYSTEMD = ("JOURNAL_STREAM", "INVOCATION_ID")


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here starts the real daemon, which loads the model."""


def config_for(tmp_path: Path, **settings: Any) -> Path:
    return write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], **settings)


def run_on_a_terminal(config: Path, env_extra: dict[str, str] | None = None) -> str:
    """Start ``hotmatte run`` with stdout on a pseudo-terminal; stop it after ``start``; its output."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD} | (env_extra or {})
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*HOTMATTE, "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    text, deadline, stopped = "", time.monotonic() + 120, False
    try:
        while time.monotonic() < deadline:
            if not stopped and re.search(r'\bstart\b.*pid|"event": "start"', ANSI.sub("", text)):
                proc.send_signal(signal.SIGTERM)
                stopped = True
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                if proc.poll() is not None and stopped:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the daemon closed its end
                break
            if not chunk:
                break
            text += chunk.decode("utf-8", "replace")
        assert proc.wait(60) == 0, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert stopped, f"no start event within 120 s:\n{text}"
    return text


def test_on_a_terminal_the_daemon_prints_coloured_console_lines(tmp_path: Path) -> None:
    text = run_on_a_terminal(config_for(tmp_path))
    assert ANSI.search(text), "no colours on a terminal"
    lines = [ANSI.sub("", line) for line in text.splitlines() if line.strip()]
    assert lines and not any(line.lstrip().startswith("{") for line in lines), "JSON on a terminal"
    start = next(line for line in lines if re.search(r"\bstart\b", line))
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[info\s*\] start\b", start), start
    assert "folders=['hot']" in start
    assert any(re.search(r"\bstop\b.*drained=True", line) for line in lines)


def test_under_systemd_a_terminal_still_gets_json(tmp_path: Path) -> None:
    text = run_on_a_terminal(config_for(tmp_path), {"INVOCATION_ID": "0123456789abcdef"})
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert [e["event"] for e in events][-1] == "stop" and any(e["event"] == "start" for e in events)
    assert not ANSI.search(text)
    # The start line says what the model runs on: auto's choice, read here from the engine's rule.
    start = next(e for e in events if e["event"] == "start")
    assert (start["device"], start["precision"]) == ("cpu", default_precision(torch.device("cpu")))


def test_in_a_pipe_the_daemon_prints_json_and_console_when_asked(tmp_path: Path) -> None:
    for log_format, expect_json in (("auto", True), ("console", False)):
        folder = tmp_path / log_format
        folder.mkdir()
        with Daemon(config_for(folder, log_format=log_format)) as daemon:
            daemon.wait_until(
                lambda: any("start" in (e.get("line") or e["event"]) for e in daemon.events), 120, "start"
            )
            assert daemon.terminate() == 0
            time.sleep(0.3)  # the reader thread takes the last lines
        not_json = daemon.named("(not json)")
        if expect_json:
            assert not not_json and daemon.named("start") and daemon.named("stop")
            continue
        lines = [e["line"] for e in not_json]
        assert len(lines) == len(daemon.events), "a JSON line among the console lines"
        assert any(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[info\s*\] start\b", line) for line in lines)
        assert not any(ANSI.search(line) for line in lines), "colour codes written into a pipe"


def test_a_name_that_is_not_utf8_never_breaks_console_logging(tmp_path: Path) -> None:
    # A UTF-8 locale gives stdout strict errors; a surrogate-escaped name (caf\xe9.jpg from an old
    # SMB client) written raw by the console renderer raised UnicodeEncodeError in the main loop.
    config = config_for(tmp_path, log_format="console")
    image = tmp_path / "photo.jpg"
    from tests.conftest import photo, save_jpeg

    save_jpeg(image, photo("astronaut")[:96, :128])
    with Daemon(config, env={"PYTHONIOENCODING": "utf-8:strict"}) as daemon:
        os.rename(image, os.fsencode(tmp_path / "hot") + b"/caf\xe9.jpg")
        daemon.wait_until(
            lambda: any(
                # the byte spelled out (as its surrogate escape), never dropped or a crash
                "done" in e.get("line", "") and "caf\\udce9" in e.get("line", "")
                for e in daemon.events
            ),
            120,
            "the file done, its name spelled out",
        )
        assert daemon.terminate() == 0
