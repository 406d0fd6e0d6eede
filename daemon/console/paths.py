"""Map a request's (folder, relative path) to a file strictly inside a configured folder.

Every console handler that takes a path from a request goes through :func:`folder_file` (or
:func:`inside` for a root it already holds); nothing else turns request text into a path.
Refused, as :class:`~daemon.errors.UnsafePath`: an unknown folder; an empty path or one with a
NUL byte; an absolute path (``/x``, ``\\x``, ``C:x``, ``~x``); any ``..`` or ``.`` or empty
component (``a//b``); a backslash (a separator elsewhere); each of those again after
percent-decoding, however many times the text was encoded (``%2e%2e%2f``, ``%252e%252e``); and
a symbolic link at any component below the root, followed or not — the daemon never reads or
writes through links below its roots (``SymlinkNotFollowed``), and neither does the console.

The root itself may be a link (a configured share mount often is); it is resolved once.
What is returned is the root's real path joined with the checked components. A link planted
between this check and the use is the caller's to refuse by opening with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from daemon.config import Config, Folder
from daemon.errors import UnsafePath

Place = Literal["input", "output", "error", "review", "done"]

#: Decoding stops after this many rounds; text still changing then is refused outright.
MAX_DECODES = 8
_DRIVE = re.compile(r"^[A-Za-z]:")


def folder_root(folder: Folder, place: Place = "input") -> Path:
    """The configured directory of ``folder`` for ``place``."""
    roots = {
        "input": folder.input,
        "output": folder.output,
        "error": folder.resolved_error_dir,
        "review": folder.resolved_review_dir,
        "done": folder.resolved_done_dir,
    }
    return roots[place]


def folder_file(config: Config, folder_name: str, relative: str, place: Place = "input") -> Path:
    """The file ``relative`` below the ``place`` directory of the configured folder ``folder_name``."""
    folder = next((f for f in config.folders if f.name == folder_name), None)
    if folder is None:
        raise UnsafePath(f"no configured folder named {folder_name!r}")
    return inside(folder_root(folder, place), relative)


def checked_parts(relative: str) -> list[str]:
    """The components of ``relative``, once each of its decodings passed the text rules."""
    if not isinstance(relative, str) or not relative:
        raise UnsafePath("an empty path")
    text = relative
    for _ in range(MAX_DECODES):
        _check_text(text)
        decoded = unquote(text)
        if decoded == text:
            return relative.split("/")
        text = decoded
    raise UnsafePath(f"{relative!r} is encoded too many times")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise UnsafePath("a NUL byte in the path")
    if "\\" in text:
        raise UnsafePath(f"{text!r}: backslashes are not allowed in paths")
    if text.startswith(("/", "~")) or _DRIVE.match(text):
        raise UnsafePath(f"{text!r} is absolute; paths are relative to a configured folder")
    for part in text.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"{text!r}: '..', '.' and empty components are not allowed")


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused unless it stays strictly inside ``root`` through no link."""
    parts = checked_parts(relative)
    base = Path(os.path.realpath(root))
    current = base
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # the rest does not exist yet (a destination): no link can be in it
        except OSError as exc:
            raise UnsafePath(f"{relative!r}: {exc.strerror}") from None
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{relative!r}: symbolic links are not followed")
    path = base.joinpath(*parts)
    # Belt and braces: the rules above already make this true.
    if os.path.commonpath([base, os.path.realpath(path)]) != str(base) or path == base:
        raise UnsafePath(f"{relative!r} is outside its folder")
    return path
