"""Outputs appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.outputs import TEMP_MARKER, mirrored_path, remove_stale_temporaries, write_atomically


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    destination = tmp_path / "a" / "out.png"
    destination.parent.mkdir()
    destination.write_bytes(b"previous result")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError):
        write_atomically(destination, half_then_crash)
    assert destination.read_bytes() == b"previous result"
    assert [p.name for p in destination.parent.iterdir()] == ["out.png"]


def test_successful_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    destination = tmp_path / "deep" / "er" / "out.png"
    write_atomically(destination, lambda tmp: tmp.write_bytes(b"new"))
    assert destination.read_bytes() == b"new"
    assert not any(TEMP_MARKER in p.name for p in destination.parent.iterdir())


def test_stale_temporaries_are_removed_and_outputs_kept(tmp_path: Path) -> None:
    keep = tmp_path / "x" / "done.png"
    keep.parent.mkdir()
    keep.write_bytes(b"ok")
    stale = keep.parent / f".done{TEMP_MARKER}1234abcd.png"
    stale.write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert keep.exists() and not stale.exists()


def test_mirrored_path_keeps_the_tree() -> None:
    assert mirrored_path(Path("/in/a/b/c.jpeg"), Path("/in"), Path("/out"), "tiff") == Path("/out/a/b/c.tif")
