"""A real ``hotmatte run`` as the non-root service user on a studio-writable tree writes only where
it should: never through a planted link, with the umask's permissions, whatever the name or mode.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from daemon.journal.store import Entry, Journal
from tests.conftest import photo
from tests.service_harness import Daemon, folder_settings, write_config
from tests.service_weights import weights_for_service_user
from tests.studio import Studio

FAST_RETRY = {"max_attempts": 2, "backoff_seconds": 0.2, "backoff_max_seconds": 0.5}


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo("coffee")).resize((96, 64)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def studio_folder(studio: Studio, **overrides: object) -> Path:
    """``hot`` → ``hot-out`` (errors in ``hot-out-errors``), all shared, and a config for them."""
    studio.private("state")
    for name in ("hot", "hot-out", "hot-out-errors"):
        studio.shared(name)
    folder = folder_settings(studio.root, "hot", **overrides)
    weights = weights_for_service_user(studio)
    return write_config(studio.root / "c.yaml", [folder], retry=FAST_RETRY, weights=str(weights))


def journal_entry(studio: Studio, path: str) -> Entry:
    journal = Journal.open_read_only(studio.root / "state" / "journal.sqlite")
    try:
        entry = journal.get("hot", path)
    finally:
        journal.close()
    assert entry is not None, path
    return entry


def test_links_planted_below_the_output_and_error_folders_are_never_written_through(studio: Studio) -> None:
    home = studio.private("home")  # stands for the service user's home
    ssh = home / ".ssh"
    ssh.mkdir()
    keys = ssh / "authorized_keys"
    keys.write_bytes(b"ssh-ed25519 AAAA the-owner\n")
    for path in (ssh, keys):
        studio.chown_to_service(path)
    config = studio_folder(studio)
    hot, out, errors = (studio.root / n for n in ("hot", "hot-out", "hot-out-errors"))
    (errors / "evil").symlink_to(ssh)
    (out / "evil2").symlink_to(home)

    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("start")
        (hot / "evil").mkdir()
        (hot / "evil2").mkdir()
        (hot / "evil" / "authorized_keys").write_bytes(b"ssh-ed25519 AAAA the-attacker\n")
        (hot / "evil2" / "pwn.jpg").write_bytes(small_jpeg())
        daemon.wait_for("failed", path="evil/authorized_keys", timeout=90)
        daemon.wait_for("failed", path="evil2/pwn.jpg", timeout=90)
        assert daemon.terminate() == 0

    assert keys.read_bytes() == b"ssh-ed25519 AAAA the-owner\n"
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [".ssh", ".ssh/authorized_keys"]
    # The link in the output tree: the file failed, its record went to the error tree.
    entry = journal_entry(studio, "evil2/pwn.jpg")
    assert (entry.state, entry.error_class) == ("failed", "SymlinkNotFollowed")
    assert "hot-out/evil2: symbolic link not followed" in (entry.last_error or "")
    record = json.loads((errors / "evil2" / "pwn.jpg.error.json").read_text())
    assert record["error_class"] == "SymlinkNotFollowed" and record["source"] == "evil2/pwn.jpg"
    # The link in the error tree: no record can go there, and the journal says why.
    entry = journal_entry(studio, "evil/authorized_keys")
    assert entry.state == "failed"
    assert "hot-out-errors/evil: symbolic link not followed" in (entry.last_error or "")


def test_error_copies_and_records_get_the_service_umask_whatever_the_originals_mode(studio: Studio) -> None:
    config = studio_folder(studio)
    hot, errors = studio.root / "hot", studio.root / "hot-out-errors"
    modes = {"read-only.jpg": 0o444, "executable.jpg": 0o755, "private.jpg": 0o640}
    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("start")
        for name, mode in modes.items():
            source = hot / name
            source.write_bytes(b"\xff\xd8 not really a jpeg")
            source.chmod(mode)
        for name in modes:
            daemon.wait_for("failed", path=name, timeout=90)
        assert daemon.terminate() == 0

    for name in modes:
        copy, report = errors / name, errors / f"{name}.error.json"
        assert copy.read_bytes() == b"\xff\xd8 not really a jpeg", name
        assert stat.S_IMODE(copy.stat().st_mode) == 0o664, name
        assert stat.S_IMODE(report.stat().st_mode) == 0o664, name
        assert copy.stat().st_uid == studio.uid
        text = report.read_text()
        record = json.loads(text)
        assert (record["folder"], record["source"]) == ("hot", name)
        assert str(studio.root) not in text  # no server paths in a record the studio reads


def test_the_longest_names_end_as_an_output_or_a_readable_record(studio: Studio) -> None:
    config = studio_folder(studio, output_format="webp")
    hot, out, errors = (studio.root / n for n in ("hot", "hot-out", "hot-out-errors"))
    fits = "a" * 235 + ".jpg"  # its old temporary name, ".<stem>.hotmatte-tmp-xxxxxxxx.webp", had 263 bytes
    too_long = "b" * 251 + ".jpg"  # 255 bytes: its result, "<stem>.webp", would need 256
    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("start")
        (hot / fits).write_bytes(small_jpeg())
        (hot / too_long).write_bytes(small_jpeg())
        daemon.wait_for("done", path=fits, timeout=90)
        daemon.wait_for("failed", path=too_long, timeout=90)
        assert daemon.terminate() == 0

    with Image.open(out / ("a" * 235 + ".webp")) as result:
        assert result.size == (96, 64)
    assert (errors / too_long).read_bytes() == (hot / too_long).read_bytes()
    (report,) = errors.glob("*.error.json")
    assert len(os.fsencode(report.name)) <= 255
    record = json.loads(report.read_text())
    assert (record["source"], record["error_class"]) == (too_long, "OutputNameTooLong")
    assert "shorter name" in record["reason"]
    assert journal_entry(studio, too_long).state == "failed"
