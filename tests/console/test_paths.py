"""No request parameter names a path outside the configured folders (daemon/console/paths.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config import parse_config
from daemon.console.paths import folder_file, inside
from daemon.errors import UnsafePath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    hot = tmp_path / "hot"
    (hot / "shoot").mkdir(parents=True)
    (hot / "shoot" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("not yours")
    return hot


def test_a_plain_relative_path_maps_inside_the_folder_even_before_the_file_exists(root: Path) -> None:
    assert inside(root, "shoot/a.jpg") == root.resolve() / "shoot" / "a.jpg"
    assert inside(root, "new/upload.jpg") == root.resolve() / "new" / "upload.jpg"
    assert inside(root, "50%off.jpg").name == "50%off.jpg"  # a % that decodes to nothing odd is a name


@pytest.mark.parametrize("relative", ["../secret.txt", "shoot/../../secret.txt", "..", "shoot/..", "./a"])
def test_dot_dot_and_dot_components_are_refused(root: Path, relative: str) -> None:
    with pytest.raises(UnsafePath):
        inside(root, relative)


@pytest.mark.parametrize("relative", ["/etc/passwd", "//etc/passwd", "~/x", "~root/x", "C:/x", "c:x"])
def test_absolute_paths_are_refused(root: Path, relative: str) -> None:
    with pytest.raises(UnsafePath, match="absolute"):
        inside(root, relative)


@pytest.mark.parametrize(
    "relative",
    [
        "%2e%2e/secret.txt",
        "%2E%2E%2Fsecret.txt",
        "shoot%2f..%2f..%2fsecret.txt",
        "%252e%252e%252fsecret.txt",  # encoded twice
        "%25252e%25252e/secret.txt",  # three times
        "%2fetc%2fpasswd",
        "..%5csecret.txt",  # a backslash, encoded
        "shoot%00.jpg",
    ],
)
def test_percent_encoded_variants_are_refused_however_often_encoded(root: Path, relative: str) -> None:
    with pytest.raises(UnsafePath):
        inside(root, relative)


def test_backslashes_empty_components_and_nul_bytes_are_refused(root: Path) -> None:
    for relative in ["..\\secret.txt", "shoot\\a.jpg", "shoot//a.jpg", "shoot/", "", "a\x00.jpg"]:
        with pytest.raises(UnsafePath):
            inside(root, relative)


def test_a_symbolic_link_at_any_component_is_refused_even_one_pointing_inside(root: Path) -> None:
    (root / "out-link").symlink_to(root.parent / "secret.txt")
    (root / "dir-link").symlink_to(root.parent)
    (root / "inner-link").symlink_to(root / "shoot" / "a.jpg")
    for relative in ["out-link", "dir-link/secret.txt", "inner-link"]:
        with pytest.raises(UnsafePath, match="symbolic link"):
            inside(root, relative)


def test_a_root_that_is_itself_a_link_is_resolved_once_and_allowed(root: Path, tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    mount.symlink_to(root)
    assert inside(mount, "shoot/a.jpg") == root.resolve() / "shoot" / "a.jpg"


def test_folder_file_names_only_configured_folders_and_their_places(tmp_path: Path, root: Path) -> None:
    config = parse_config(
        f"folders:\n  - name: hot\n    input: {root}\n    output: {tmp_path / 'out'}\n", tmp_path
    )
    assert folder_file(config, "hot", "shoot/a.jpg") == root.resolve() / "shoot" / "a.jpg"
    errors = Path(os.path.realpath(tmp_path)) / "out-errors"
    assert folder_file(config, "hot", "a.jpg.error.json", "error") == errors / "a.jpg.error.json"
    with pytest.raises(UnsafePath, match="no configured folder"):
        folder_file(config, "../hot", "shoot/a.jpg")
