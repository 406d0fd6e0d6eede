"""Outputs appear whole or not at all, only inside their root, with the umask's permissions."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path, PurePosixPath

import pytest

from daemon.errors import OutputNameTooLong, ShareUnavailable, SymlinkNotFollowed
from daemon.finish.outputs import (
    NAME_MAX,
    TEMP_MARKER,
    Destination,
    mirrored_path,
    remove_stale_temporaries,
    write_atomically,
)
from daemon.finish.roots import MARKER_NAME, REGISTRY, RootRegistry
from daemon.journal.names import printable


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    destination = tmp_path / "a" / "out.png"
    destination.parent.mkdir()
    destination.write_bytes(b"previous result")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError):
        write_atomically(Destination(tmp_path, PurePosixPath("a/out.png")), half_then_crash)
    assert destination.read_bytes() == b"previous result"
    assert [p.name for p in destination.parent.iterdir()] == ["out.png"]


def test_successful_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    written = write_atomically(
        Destination(tmp_path, PurePosixPath("deep/er/out.png")), lambda tmp: tmp.write_bytes(b"new")
    )
    assert written == tmp_path / "deep" / "er" / "out.png"
    assert written.read_bytes() == b"new"
    assert not any(TEMP_MARKER in p.name for p in written.parent.iterdir())


def test_a_link_below_the_root_is_never_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "evil").symlink_to(elsewhere)
    (root / "a").mkdir()
    (root / "a" / "b").symlink_to(elsewhere)
    for relative in ("evil/pwn.png", "evil/new/pwn.png", "a/b/pwn.png"):
        with pytest.raises(SymlinkNotFollowed, match="symbolic link not followed"):
            write_atomically(Destination(root, PurePosixPath(relative)), lambda tmp: tmp.write_bytes(b"x"))
    assert list(elsewhere.iterdir()) == []


def test_a_link_at_the_final_name_is_replaced_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "authorized_keys"
    target.write_bytes(b"the owner's key")
    root = tmp_path / "out"
    root.mkdir()
    (root / "a.png").symlink_to(target)
    write_atomically(Destination(root, PurePosixPath("a.png")), lambda tmp: tmp.write_bytes(b"cut-out"))
    assert target.read_bytes() == b"the owner's key"
    assert not (root / "a.png").is_symlink() and (root / "a.png").read_bytes() == b"cut-out"


def test_the_longest_names_get_a_temporary_that_fits(tmp_path: Path) -> None:
    name = "é" * ((NAME_MAX - 4) // 2) + ".png"  # 254 bytes: the old temporary name had 277
    assert len(os.fsencode(name)) <= NAME_MAX
    written = write_atomically(Destination(tmp_path, PurePosixPath(name)), lambda tmp: tmp.write_bytes(b"ok"))
    assert written.read_bytes() == b"ok"


def test_a_result_name_no_file_system_allows_is_a_readable_failure(tmp_path: Path) -> None:
    name = "x" * 253 + ".webp"
    with pytest.raises(OutputNameTooLong, match=r"258 bytes long.*shorter name"):
        write_atomically(Destination(tmp_path, PurePosixPath(name)), lambda tmp: tmp.write_bytes(b"x"))
    assert list(tmp_path.iterdir()) == []


def test_undecodable_names_are_written_and_shown_readably(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.png")
    written = write_atomically(Destination(tmp_path, PurePosixPath(name)), lambda tmp: tmp.write_bytes(b"ok"))
    assert os.listdir(os.fsencode(tmp_path)) == [b"caf\xe9.png"] and written.read_bytes() == b"ok"
    assert printable(name) == "caf\\xe9.png"


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_files_and_folders_get_the_umask_never_more(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        written = write_atomically(
            Destination(tmp_path, PurePosixPath("new/a.png")), lambda tmp: tmp.write_bytes(b"x")
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o777 & ~umask


def test_stale_temporaries_are_removed_and_outputs_kept(tmp_path: Path) -> None:
    keep = tmp_path / "x" / "done.png"
    keep.parent.mkdir()
    keep.write_bytes(b"ok")
    stale = keep.parent / f"{TEMP_MARKER}0123456789abcdef"
    stale.write_bytes(b"half")
    older = keep.parent / f".done{TEMP_MARKER}1234abcd.png"  # the name before fixed-length temporaries
    older.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([stale, older])
    assert keep.exists() and not stale.exists() and not older.exists()


def test_with_an_age_only_temporaries_untouched_that_long_are_removed(tmp_path: Path) -> None:
    """Cluster mode: another node may be writing its temporary below the same root right now."""
    dead = tmp_path / f"{TEMP_MARKER}00000000000000aa"
    dead.write_bytes(b"half")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    live = tmp_path / f"{TEMP_MARKER}00000000000000bb"
    live.write_bytes(b"being written")
    assert remove_stale_temporaries(tmp_path, older_than=900) == [dead]
    assert live.exists()


def test_stale_cleanup_never_walks_into_a_linked_folder_or_deletes_through_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    victim = elsewhere / f"{TEMP_MARKER}looks-stale"
    victim.write_bytes(b"someone else's file")
    root = tmp_path / "out"
    root.mkdir()
    (root / "evil").symlink_to(elsewhere)
    (root / f"{TEMP_MARKER}link").symlink_to(victim)
    assert remove_stale_temporaries(root) == []
    assert victim.read_bytes() == b"someone else's file"


def test_a_trusted_root_may_itself_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "nas" / "out"
    real.mkdir(parents=True)
    (tmp_path / "out").symlink_to(real)
    stale = real / f"{TEMP_MARKER}0123456789abcdef"
    stale.write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path / "out") == [tmp_path / "out" / stale.name]
    write_atomically(
        Destination(tmp_path / "out", PurePosixPath("a/b.png")), lambda tmp: tmp.write_bytes(b"x")
    )
    assert (real / "a" / "b.png").read_bytes() == b"x"


def test_a_remembered_root_renamed_away_is_not_recreated(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    REGISTRY.remember(root)
    assert (root / MARKER_NAME).is_file()
    root.rename(tmp_path / "out-old")
    with pytest.raises(ShareUnavailable, match="is gone"):
        write_atomically(Destination(root, PurePosixPath("a.png")), lambda tmp: tmp.write_bytes(b"x"))
    assert not root.exists()
    root.mkdir()  # someone makes an empty folder of that name: still not the remembered root
    with pytest.raises(ShareUnavailable, match="marker"):
        write_atomically(Destination(root, PurePosixPath("a.png")), lambda tmp: tmp.write_bytes(b"x"))
    assert list(root.iterdir()) == []
    root.rmdir()
    (tmp_path / "out-old").rename(root)  # back: writes resume
    write_atomically(Destination(root, PurePosixPath("a.png")), lambda tmp: tmp.write_bytes(b"x"))
    assert (root / "a.png").read_bytes() == b"x"


def test_mirrored_path_keeps_the_tree() -> None:
    assert mirrored_path(Path("/in/a/b/c.jpeg"), Path("/in"), Path("/out"), "tiff") == Path("/out/a/b/c.tif")


def test_a_root_written_to_before_is_never_remade_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "journal.roots.json"
    state.parent.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    first = RootRegistry()
    first.keep_state(state)
    first.remember(root)
    marker = (root / MARKER_NAME).read_text()

    (root / MARKER_NAME).rename(tmp_path / "kept-marker")  # the share is unmounted: an empty folder
    second = RootRegistry()  # the daemon restarts
    second.keep_state(state)
    with pytest.raises(ShareUnavailable, match=r"earlier run.*journal\.roots\.json"):
        second.expect(root)
    with pytest.raises(ShareUnavailable):
        second.check(root)
    assert not (root / MARKER_NAME).exists()  # no new marker: that would adopt the empty folder

    (tmp_path / "kept-marker").rename(root / MARKER_NAME)  # mounted again
    second.check(root)
    assert (root / MARKER_NAME).read_text() == marker


def test_a_root_absent_at_start_is_made_and_marked_by_its_first_write_only(tmp_path: Path) -> None:
    root = tmp_path / "out-errors"
    REGISTRY.remember(root)
    REGISTRY.check(root, writing=False)  # the service asking whether the folder may be fed
    remove_stale_temporaries(root)
    assert not root.exists()  # an error folder nothing failed into never appears
    write_atomically(Destination(root, PurePosixPath("a.jpg.error.json")), lambda tmp: tmp.write_bytes(b"{}"))
    assert sorted(p.name for p in root.iterdir()) == [MARKER_NAME, "a.jpg.error.json"]
    (root / MARKER_NAME).unlink()  # from now on it is a remembered root like any other
    with pytest.raises(ShareUnavailable, match="marker"):
        write_atomically(Destination(root, PurePosixPath("b.json")), lambda tmp: tmp.write_bytes(b"{}"))
