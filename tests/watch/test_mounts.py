"""Choosing inotify or polling from the filesystem a folder lives on."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import Folder
from daemon.watch.mounts import choose_observer, filesystem_type, is_network_filesystem, parse_mounts

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
//nas/studio /mnt/studio cifs rw,vers=3.0 0 0
nas:/export/photos /mnt/photos nfs4 rw 0 0
user@host:/srv /mnt/ssh fuse.sshfs rw 0 0
/dev/sdb1 /mnt/usb fuseblk rw 0 0
/dev/sdc1 /mnt/studio/local ext4 rw 0 0
//nas/with\\040space /mnt/with\\040space smb3 rw 0 0
"""


def test_parse_unescapes_octal_sequences() -> None:
    assert ("/mnt/with space", "smb3") in parse_mounts(MOUNTS)


@pytest.mark.parametrize(
    ("path", "fs_type"),
    [
        ("/home/studio/hot", "ext4"),
        ("/mnt/studio", "cifs"),
        ("/mnt/studio/hot/in", "cifs"),
        ("/mnt/studio/local/hot", "ext4"),  # the longer mount point on top wins
        ("/mnt/studio-other", "ext4"),  # a prefix of the name is not a parent
        ("/mnt/photos/x", "nfs4"),
        ("/mnt/with space/hot", "smb3"),
    ],
)
def test_filesystem_type_uses_the_longest_mount_point(path: str, fs_type: str) -> None:
    assert filesystem_type(Path(path), MOUNTS) == fs_type


@pytest.mark.parametrize(
    ("fs_type", "network"),
    [
        ("cifs", True),
        ("smb3", True),
        ("nfs", True),
        ("nfs4", True),
        ("fuse.sshfs", True),
        ("ext4", False),
        ("xfs", False),
        ("fuseblk", False),
        ("tmpfs", False),
    ],
)
def test_network_filesystems(fs_type: str, network: bool) -> None:
    assert is_network_filesystem(fs_type) is network


def _folder(input_path: str, observer: str = "auto") -> Folder:
    return Folder.model_validate(
        {"name": "f", "input": input_path, "output": "/srv/out", "observer": observer}
    )


def test_auto_polls_on_shares_and_uses_inotify_on_local_disks() -> None:
    assert choose_observer(_folder("/mnt/studio/hot"), MOUNTS) == "polling"
    assert choose_observer(_folder("/mnt/ssh/hot"), MOUNTS) == "polling"
    assert choose_observer(_folder("/home/studio/hot"), MOUNTS) == "native"
    assert choose_observer(_folder("/mnt/usb/hot"), MOUNTS) == "native"


def test_an_explicit_observer_overrides_the_guess() -> None:
    assert choose_observer(_folder("/mnt/studio/hot", "native"), MOUNTS) == "native"
    assert choose_observer(_folder("/home/studio/hot", "polling"), MOUNTS) == "polling"


def test_this_machines_root_is_read_from_proc_mounts() -> None:
    text = Path("/proc/mounts").read_text()
    assert filesystem_type(Path("/"), text) != "unknown"
