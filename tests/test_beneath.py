"""daemon.beneath: nothing below a root is ever followed when it is a link, and FIFOs never hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.beneath import fd_path, open_directory, open_regular_file, opened_regular_file, parts_of
from daemon.errors import NotARegularFile, SymlinkNotFollowed


def test_a_file_below_the_root_is_opened_and_read_through_its_descriptor(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.jpg").write_bytes(b"photo")
    with opened_regular_file(tmp_path, "a/b/x.jpg") as fd:
        assert fd_path(fd).read_bytes() == b"photo"


def test_a_linked_file_is_refused_without_reading_its_target(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("password")
    (tmp_path / "hot").mkdir()
    (tmp_path / "hot" / "x.jpg").symlink_to(secret)
    with pytest.raises(SymlinkNotFollowed, match=r"x\.jpg: symbolic link not followed"):
        open_regular_file(tmp_path / "hot", "x.jpg")


def test_a_linked_folder_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jpg").write_bytes(b"photo")
    (tmp_path / "hot").mkdir()
    (tmp_path / "hot" / "evil").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SymlinkNotFollowed, match="evil: symbolic link not followed"):
        open_regular_file(tmp_path / "hot", "evil/x.jpg")
    with pytest.raises(SymlinkNotFollowed):
        open_directory(tmp_path / "hot", "evil/sub", create=True)
    assert not (tmp_path / "elsewhere" / "sub").exists()


def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.jpg").write_bytes(b"photo")
    (tmp_path / "root").symlink_to(tmp_path / "real")
    with opened_regular_file(tmp_path / "root", "x.jpg") as fd:
        assert os.read(fd, 5) == b"photo"


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(NotARegularFile, match="named pipe"):
        open_regular_file(tmp_path, "pipe.jpg")


def test_missing_folders_are_created_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_directory(tmp_path, "a/b")
    fd = open_directory(tmp_path, "a/b", create=True)
    os.close(fd)
    assert (tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x"])
def test_relative_paths_that_leave_the_root_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parts_of(bad)
