"""Error records and done-folder moves, on real files (including a real cross-filesystem move)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.config import Folder
from daemon.errors import CorruptInput
from daemon.failures import describe, error_copy_path, move_to_done, read_failure, record_failure
from daemon.outputs import TEMP_MARKER


def make_folder(root: Path, **overrides: object) -> Folder:
    (root / "hot").mkdir(exist_ok=True)
    settings: dict[str, object] = {"name": "hot", "input": root / "hot", "output": root / "out"}
    settings.update(overrides)
    return Folder.model_validate(settings)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failure_leaves_a_mirrored_copy_and_a_readable_report(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    source = folder.input / "shoot" / "broken.jpg"
    source.parent.mkdir()
    source.write_bytes(b"\xff\xd8 not really a jpeg")
    before = (digest(source), source.stat().st_mtime_ns)
    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    report = record_failure(folder, source, "CorruptInput", "truncated JPEG", attempts=1, now=when)

    copy = tmp_path / "out-errors" / "shoot" / "broken.jpg"
    assert report == copy.with_name("broken.jpg.error.json")
    assert digest(copy) == before[0]
    assert (digest(source), source.stat().st_mtime_ns) == before  # the original is untouched
    record = json.loads(report.read_text())
    assert record["reason"] == "truncated JPEG"
    assert record["error_class"] == "CorruptInput"
    assert record["timestamp"] == "2026-11-23T12:00:00+00:00"
    assert record["source"] == str(source)
    assert read_failure(report).attempts == 1
    assert not [p for p in copy.parent.iterdir() if TEMP_MARKER in p.name]


def test_the_error_dir_setting_is_used(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, error_dir=tmp_path / "rejects")
    source = folder.input / "x.jpg"
    source.write_bytes(b"x")
    assert error_copy_path(folder, source) == tmp_path / "rejects" / "x.jpg"
    record_failure(folder, source, "UnsupportedInput", "not an image", attempts=1)
    assert (tmp_path / "rejects" / "x.jpg.error.json").exists()


def test_a_vanished_original_still_gets_a_report(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    source = folder.input / "gone.jpg"
    report = record_failure(folder, source, "ShareUnavailable", "share gone", attempts=5)
    record = read_failure(report)
    assert "no longer be read" in record.reason and record.error_class == "ShareUnavailable"


def test_describe_marks_unexpected_errors_as_internal() -> None:
    assert describe(CorruptInput("truncated JPEG")) == ("CorruptInput", "truncated JPEG")
    assert describe(KeyError("k")) == ("KeyError", "internal error (KeyError): 'k'")
    assert describe(ValueError()) == ("ValueError", "internal error (ValueError): ValueError")


def test_move_to_done_mirrors_and_never_overwrites(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, on_success="move")
    (folder.input / "a").mkdir()
    first = folder.input / "a" / "p.jpg"
    first.write_bytes(b"first")
    moved = move_to_done(folder, first)
    assert moved == tmp_path / "hot-done" / "a" / "p.jpg"
    assert moved.read_bytes() == b"first" and not first.exists()

    first.write_bytes(b"second")
    again = move_to_done(folder, first)
    assert again == tmp_path / "hot-done" / "a" / "p (1).jpg"
    assert again.read_bytes() == b"second" and moved.read_bytes() == b"first"


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem (tmpfs at /dev/shm)")
def test_move_to_done_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm") / f"hotmatte-test-{os.getpid()}"
    shm.mkdir()
    try:
        folder = make_folder(tmp_path, on_success="move", done_dir=shm / "done")
        if os.stat(tmp_path).st_dev == os.stat(shm).st_dev:
            pytest.skip("tmp_path and /dev/shm are the same filesystem here")
        source = folder.input / "p.jpg"
        source.write_bytes(b"payload" * 1000)
        moved = move_to_done(folder, source)
        assert moved == shm / "done" / "p.jpg"
        assert moved.read_bytes() == b"payload" * 1000 and not source.exists()
    finally:
        for path in sorted(shm.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        shm.rmdir()
