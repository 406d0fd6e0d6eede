"""Error records and done-folder moves, on real files (including a real cross-filesystem move)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.config import Folder
from daemon.errors import CorruptInput, SymlinkNotFollowed
from daemon.finish.failures import (
    describe,
    error_copy_path,
    move_to_done,
    read_failure,
    record_failure,
    record_name,
)
from daemon.finish.outputs import NAME_MAX, TEMP_MARKER


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
    assert (record["folder"], record["source"]) == ("hot", "shoot/broken.jpg")  # never a server path
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


def test_move_to_done_leaves_a_version_that_changed_since_it_was_processed(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, on_success="move")
    source = folder.input / "p.jpg"
    source.write_bytes(b"processed")
    st = source.stat()
    source.write_bytes(b"re-exported meanwhile")
    assert move_to_done(folder, source, (st.st_size, st.st_mtime_ns)) is None
    assert source.read_bytes() == b"re-exported meanwhile"
    assert not (tmp_path / "hot-done" / "p.jpg").exists()


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


@pytest.mark.parametrize("mode", [0o444, 0o640, 0o755])
def test_an_error_copy_has_the_umask_never_the_originals_mode(tmp_path: Path, mode: int) -> None:
    folder = make_folder(tmp_path)
    source = folder.input / "x.jpg"
    source.write_bytes(b"broken")
    source.chmod(mode)
    old = os.umask(0o002)
    try:
        report = record_failure(folder, source, "CorruptInput", "truncated", attempts=1)
    finally:
        os.umask(old)
    copy = error_copy_path(folder, source)
    assert copy.read_bytes() == b"broken"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o664
    assert stat.S_IMODE(report.stat().st_mode) == 0o664


@pytest.mark.parametrize("error_class", ["SymlinkNotFollowed", "NotARegularFile", "CorruptInput"])
def test_a_linked_original_is_never_copied_only_recorded(tmp_path: Path, error_class: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the daemon user's secret")
    folder = make_folder(tmp_path)
    source = folder.input / "x.jpg"
    source.symlink_to(secret)
    report = record_failure(folder, source, error_class, "x.jpg: symbolic link not followed", attempts=1)
    assert read_failure(report).error_class == error_class
    assert not error_copy_path(folder, source).exists()
    assert [p.name for p in report.parent.iterdir()] == ["x.jpg.error.json"]


def test_a_link_in_the_error_tree_is_never_written_through(tmp_path: Path) -> None:
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "authorized_keys").write_bytes(b"owner's key")
    folder = make_folder(tmp_path)
    (tmp_path / "out-errors").mkdir()
    (tmp_path / "out-errors" / "evil").symlink_to(ssh)
    source = folder.input / "evil" / "authorized_keys"
    source.parent.mkdir()
    source.write_bytes(b"attacker's key")
    with pytest.raises(SymlinkNotFollowed, match="out-errors/evil: symbolic link not followed"):
        record_failure(folder, source, "UnsupportedInput", "not an image", attempts=1)
    assert [p.name for p in ssh.iterdir()] == ["authorized_keys"]
    assert (ssh / "authorized_keys").read_bytes() == b"owner's key"


def test_a_record_name_too_long_is_shortened_and_names_the_whole_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    source = folder.input / ("é" * 125 + ".jpg")  # 254 bytes: fits, but not with .error.json
    source.write_bytes(b"broken")
    report = record_failure(folder, source, "OutputNameTooLong", "the result's name is too long", attempts=1)
    assert len(os.fsencode(report.name)) <= NAME_MAX and report.name.endswith(".error.json")
    assert report.name == record_name(source.name) and report.name.startswith("é" * 100)
    assert read_failure(report).source == source.name
    assert error_copy_path(folder, source).read_bytes() == b"broken"


def test_an_undecodable_name_gets_its_copy_and_a_readable_record(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    source = folder.input / os.fsdecode(b"caf\xe9.jpg")
    source.write_bytes(b"broken")
    report = record_failure(folder, source, "CorruptInput", f"{source.name}: truncated", attempts=1)
    assert os.fsencode(report.name) == b"caf\xe9.jpg.error.json"
    record = json.loads(report.read_bytes().decode("utf-8"))
    assert record["source"] == "caf\\xe9.jpg" and record["reason"] == "caf\\xe9.jpg: truncated"
    assert error_copy_path(folder, source).read_bytes() == b"broken"


def test_move_to_done_never_moves_through_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = make_folder(tmp_path, on_success="move")
    (tmp_path / "hot-done").mkdir()
    (tmp_path / "hot-done" / "a").symlink_to(elsewhere)
    source = folder.input / "a" / "p.jpg"
    source.parent.mkdir()
    source.write_bytes(b"p")
    with pytest.raises(SymlinkNotFollowed):
        move_to_done(folder, source)
    assert source.read_bytes() == b"p" and list(elsewhere.iterdir()) == []


def test_move_to_done_never_replaces_a_link_of_the_same_name(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    folder = make_folder(tmp_path, on_success="move")
    (tmp_path / "hot-done").mkdir()
    (tmp_path / "hot-done" / "p.jpg").symlink_to(target)
    source = folder.input / "p.jpg"
    source.write_bytes(b"p")
    assert move_to_done(folder, source) == tmp_path / "hot-done" / "p (1).jpg"
    assert target.read_bytes() == b"keep" and (tmp_path / "hot-done" / "p.jpg").is_symlink()
