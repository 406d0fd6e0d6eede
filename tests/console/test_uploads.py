"""The Try/Batch pages' upload and pick rules (daemon/console/uploads.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config import Config, Folder
from daemon.console.uploads import label, list_folder, resolve_in_folder, stored_name
from daemon.errors import UnsafePath


@pytest.mark.parametrize(
    "relative",
    [
        "../x.jpg",
        "a/../../x.jpg",
        "%2e%2e/x.jpg",
        "%2E%2E%2Fx.jpg",
        "%252e%252e%252fx.jpg",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "..\\x.jpg",
        "a\x00b.jpg",
        "",
        ".",
        "%25252525252e",
    ],
)
def test_paths_leaving_the_folder_in_any_encoding_are_refused(tmp_path: Path, relative: str) -> None:
    config = _config(tmp_path)
    (tmp_path / "x.jpg").write_bytes(b"outside")
    (tmp_path / "etc").mkdir()
    with pytest.raises(UnsafePath):
        resolve_in_folder(config, "hot", relative)


def test_a_percent_in_a_real_file_name_is_part_of_the_name_and_dot_components_are_refused(
    tmp_path: Path,
) -> None:
    """The shared rule (daemon/console/paths.py): form fields arrive decoded once, so what is left
    is the name on disk; ``.`` and empty components are refused rather than tidied away."""
    config = _config(tmp_path)
    (tmp_path / "hot" / "sub" / "a%20b.jpg").write_bytes(b"literal")
    (tmp_path / "hot" / "sub" / "a b.jpg").write_bytes(b"decoded")
    fd, relative = resolve_in_folder(config, "hot", "sub/a%20b.jpg")
    try:
        assert os.read(fd, 10) == b"literal" and relative == "sub/a%20b.jpg"
    finally:
        os.close(fd)
    for untidy in ("sub/./a b.jpg", "sub//a b.jpg"):
        with pytest.raises(UnsafePath):
            resolve_in_folder(config, "hot", untidy)


def _config(tmp_path: Path) -> Config:
    (tmp_path / "hot" / "sub").mkdir(parents=True, exist_ok=True)
    return Config(folders=(Folder(name="hot", input=tmp_path / "hot", output=tmp_path / "out"),))


def test_a_file_inside_the_folder_resolves_and_links_below_it_do_not(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    (tmp_path / "hot" / "sub" / "a.jpg").write_bytes(b"inside")
    (tmp_path / "hot" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (tmp_path / "hot" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    fd, clean = resolve_in_folder(config, "hot", "sub/a.jpg")
    try:
        assert os.read(fd, 10) == b"inside" and clean == "sub/a.jpg"
    finally:
        os.close(fd)
    for relative in ("link.jpg", "dirlink/secret.jpg", "sub", "missing.jpg"):
        with pytest.raises(UnsafePath):
            resolve_in_folder(config, "hot", relative)
    with pytest.raises(UnsafePath):
        resolve_in_folder(config, "other", "sub/a.jpg")
    assert list_folder(config, "hot") == []  # link.jpg is a link: not offered


def test_client_file_names_are_labels_never_paths() -> None:
    assert label("../../etc/passwd") == "passwd"
    assert label("C:\\Users\\x\\photo.JPG") == "photo.JPG"
    assert stored_name(3, "../evil.sh\n") == "003.sh"
    assert stored_name(4, "photo.tar.gz/..") == "004"
