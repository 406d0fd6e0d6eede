"""``hotmatte run`` under a flood of fast failures, and an honest watchdog: real daemons, real sockets."""

from __future__ import annotations

import io
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.journal.store import Journal, State
from tests.conftest import photo
from tests.notify_listener import NotifyListener, notify
from tests.service_harness import Daemon, folder_settings, write_config

__all__ = ["notify"]  # the fixture, imported for pytest


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here starts a daemon, which loads the model."""


def counts(tmp_path: Path) -> dict[State, int]:
    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        return journal.counts().get("hot", dict.fromkeys(("pending", "running", "done", "failed"), 0))
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("when", "queue_size"),
    [
        # Dropped while the daemon runs, into a one-slot pipeline: refused submits all the time
        # while files fail in microseconds. The old loop could wedge after a refusal that read
        # in_flight 0 (measured: stuck at 263 failed, 1,237 pending, for good).
        ("while-running", 1),
        # Already there at start: the start-up scan makes 1,500 arrivals at once, over the loop's
        # 1,000-item turn; the old loop dropped the item it held at the end of a turn. A roomy
        # pipeline keeps the wedge out of this one.
        ("before-start", 64),
    ],
)
def test_1500_fast_failures_each_end_failed_with_a_record_and_none_is_left_running(
    tmp_path: Path, when: str, queue_size: int
) -> None:
    n = 1500
    config = write_config(
        tmp_path / "c.yaml",
        [folder_settings(tmp_path, "hot", stable_seconds=0.3)],
        reconcile_seconds=3600,  # only the start-up scan: a dropped arrival is never found again
        workers={"decode": 1, "finish": 1, "queue_size": queue_size},
    )
    junk = [tmp_path / "hot" / f"junk{i:04}.jpg" for i in range(n)]
    if when == "before-start":
        for path in junk:
            path.write_bytes(b"")
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        if when == "while-running":
            for path in junk:
                path.write_bytes(b"")
        began = time.monotonic()
        daemon.wait_until(lambda: counts(tmp_path)["failed"] == n, 300, f"{n} failed")
        seconds = time.monotonic() - began
        time.sleep(0.5)
        final = counts(tmp_path)
        assert daemon.proc.poll() is None
        assert daemon.terminate() == 0
    print(f"{n} fast failures ({when}) recorded in {seconds:.1f} s ({n / seconds:.0f} files/s)")
    assert (final["running"], final["pending"], final["failed"]) == (0, 0, n)
    records = sorted(p.name for p in (tmp_path / "hot-out-errors").glob("*.error.json"))
    assert records == [f"{p.name}.error.json" for p in junk]
    assert len(daemon.named("failed")) == n


# --- the watchdog ping is honest -----------------------------------------------------------------------


def slow_jpeg() -> bytes:
    """A 24 MP photo: with ``portrait``, many seconds in the finish stage (refinement, colour
    decontamination and a 24 MP PNG) while the small files queued behind it cannot move."""
    image = Image.fromarray(photo("astronaut")).resize((6000, 4000))
    noise = np.random.default_rng(1).integers(0, 24, (4000, 6000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image) ^ noise).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_watchdog_pings_stop_while_work_is_stuck_and_resume_when_it_moves(
    tmp_path: Path, notify: NotifyListener
) -> None:
    stall = 1.0
    config = write_config(
        tmp_path / "c.yaml",
        # portrait, not raw: a raw 24 MP finish (~1.2 s on a quiet machine) barely outlasts the
        # stall time, so the test passed only on a loaded machine.
        [folder_settings(tmp_path, "hot", profile="portrait")],
        stall_seconds=stall,
        workers={"decode": 1, "finish": 1, "queue_size": 1},
    )
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "500000"}  # a ping every 0.25 s
    small = io.BytesIO()
    Image.fromarray(photo("astronaut")).resize((192, 128)).save(small, "JPEG")
    with Daemon(config, env) as daemon:
        daemon.wait_for("start")
        daemon.wait_until(lambda: len(notify.pings()) >= 4, 10, "pings while idle")
        (tmp_path / "hot" / "a-big.jpg").write_bytes(slow_jpeg())
        for n in range(6):  # work waiting behind it: the pipeline is full, nothing moves
            (tmp_path / "hot" / f"b{n}.jpg").write_bytes(small.getvalue())
        stalled = daemon.wait_for("stalled", timeout=120)[0]
        daemon.wait_for("done", count=7, timeout=180)
        resumed_at = time.monotonic()
        daemon.wait_until(lambda: len(notify.pings(after=resumed_at)) >= 3, 10, "pings again")
        assert daemon.named("unstalled")
        assert daemon.terminate() == 0
    times = notify.pings()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"stalled after {stalled['seconds']} s; longest gap between pings {max(gaps):.1f} s")
    assert max(gaps) >= stall - 0.5, gaps  # pings did stop...
    assert len(daemon.named("stalled")) == 1  # ...logged once
