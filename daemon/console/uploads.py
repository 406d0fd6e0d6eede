"""Bounded uploads and hot-folder picks for the Try and Batch pages.

Uploads are streamed straight into the console's state directory (Starlette's own form parser
spools big files into the system temp directory, outside it), counting bytes as they arrive:
a request over ``console.upload_max_mb`` is refused from its Content-Length before a byte is
read, and a chunked one as soon as it passes the bound. The client's file name is only ever a
label: files are stored under names we make. Megapixels are checked later, on each file's
header, by :func:`daemon.io.detect.open_image` (before any decode).

:func:`resolve_in_folder` maps a (hot folder, relative path) pick to a descriptor of a regular
file strictly inside that folder, through the console's shared path rule
(:mod:`daemon.console.paths`) and then an ``O_NOFOLLOW`` open.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from daemon.beneath import open_regular_file
from daemon.config import Config
from daemon.console.paths import folder_file
from daemon.errors import HotmatteError, UnsafePath

if TYPE_CHECKING:  # a typing-only name in python_multipart
    from python_multipart.multipart import MultipartCallbacks

SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


class UploadRefused(Exception):
    """The request breaks a bound (too many bytes or files) or is malformed; ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Received:
    """What a multipart request held: text fields, and files saved as (label, path)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, Path]] = field(default_factory=list)


def label(filename: str) -> str:
    """The client's file name as a harmless label: last component, printable, at most 120 chars."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return (name or "upload")[:120]


def stored_name(index: int, filename: str) -> str:
    suffix = Path(label(filename)).suffix
    return f"{index:03d}{suffix.lower() if SAFE_SUFFIX.match(suffix) else ''}"


async def receive(request: Request, into: Path, max_bytes: int, max_files: int) -> Received:
    """Stream a multipart request's files into ``into`` (created); :class:`UploadRefused` on a bound.

    On refusal everything written so far is removed.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UploadRefused(
            f"the upload is {int(declared) / 1e6:.1f} MB, over console.upload_max_mb "
            f"({max_bytes / 1e6:g} MB); nothing was stored",
            413,
        )
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadRefused("expected a multipart/form-data upload")
    into.mkdir(parents=True, exist_ok=True)
    parser = _Parser(into, max_files)
    multipart = MultipartParser(boundary, parser.callbacks())
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:
                raise UploadRefused(
                    f"the upload passed console.upload_max_mb ({max_bytes / 1e6:g} MB); nothing was stored",
                    413,
                )
            multipart.write(chunk)
            if parser.error is not None:
                raise UploadRefused(parser.error)
        multipart.finalize()
    except UploadRefused:
        parser.close()
        shutil.rmtree(into, ignore_errors=True)
        raise
    except Exception as exc:  # python_multipart's parse errors: a malformed body is the client's fault
        parser.close()
        shutil.rmtree(into, ignore_errors=True)
        raise UploadRefused(f"malformed upload: {exc}") from None
    parser.close()
    return parser.received


class _Parser:
    """python_multipart callbacks writing file parts to disk and keeping small text fields."""

    MAX_FIELD = 64 << 10

    def __init__(self, into: Path, max_files: int) -> None:
        self.into, self.max_files = into, max_files
        self.received = Received()
        self.error: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._name: str | None = None
        self._text: bytearray | None = None
        self._file: object | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self._text = bytearray()
            return
        self._text = None
        shown = filename.decode("utf-8", "replace")
        if not shown:  # an empty <input type=file> still sends a part
            self._file = None
            return
        if len(self.received.files) >= self.max_files:
            self.error = f"at most {self.max_files} files per upload"
            self._file = None
            return
        path = self.into / stored_name(len(self.received.files), shown)
        self._file = path.open("wb")
        self.received.files.append((label(shown), path))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._text is not None:
            self._text += data[start:end]
            if len(self._text) > self.MAX_FIELD:
                self.error = f"form field {self._name!r} is too long"
        elif self._file is not None:
            self._file.write(data[start:end])  # type: ignore[attr-defined]

    def _end(self) -> None:
        if self._text is not None and self._name:
            self.received.fields[self._name] = self._text.decode("utf-8", "replace")
        self._text = None
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None


def upload_limit(config: Config) -> int:
    """``console.upload_max_mb`` in bytes (the default when the console section is absent)."""
    console = config.console
    megabytes = console.upload_max_mb if console is not None else 2048.0
    return int(megabytes * 1e6)


def resolve_in_folder(config: Config, folder: str, relative: str) -> tuple[int, str]:
    """(read-only descriptor, relative path) of a regular file strictly inside hot folder ``folder``.

    The request's text is checked by the console's one path rule
    (:func:`daemon.console.paths.folder_file`: unknown folders, ``..``, absolute paths,
    backslashes, links and every percent-encoded variant are refused); the file is then opened
    component by component with ``O_NOFOLLOW`` (:func:`daemon.beneath.open_regular_file`), so
    a link planted between the check and the open is refused too. :class:`UnsafePath` for all.
    """
    folder_file(config, folder, relative)
    root = next(f.input for f in config.folders if f.name == folder)
    try:
        return open_regular_file(root, relative), relative
    except OSError as exc:  # SymlinkNotFollowed, NotARegularFile, missing: all "not a file in there"
        raise UnsafePath(f"{relative}: {exc.strerror or exc}") from None
    except HotmatteError as exc:
        raise UnsafePath(f"{relative}: {exc}") from None


def list_folder(config: Config, folder: str, limit: int = 200) -> list[str]:
    """Up to ``limit`` regular files directly in hot folder ``folder`` (links are not listed)."""
    for f in config.folders:
        if f.name == folder:
            try:
                with os.scandir(f.input) as entries:
                    names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
            except OSError:
                return []
            return sorted(n for n in names if not n.startswith("."))[:limit]
    return []


def clear_scratch(state_dir: Path, name: str) -> None:
    """Remove a page's leftovers under ``state_dir/name`` (a crash or a stop mid-batch leaves uploads)."""
    shutil.rmtree(state_dir / name, ignore_errors=True)


def prune_older(folder: Path, keep: int, max_age_seconds: float) -> None:
    """Keep the ``keep`` newest sub-folders of ``folder`` under ``max_age_seconds`` old; remove the rest."""
    try:
        entries = sorted(
            (e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)),
            key=lambda e: e.stat(follow_symlinks=False).st_mtime,
            reverse=True,
        )
    except OSError:
        return
    now = time.time()
    for index, entry in enumerate(entries):
        if index >= keep or now - entry.stat(follow_symlinks=False).st_mtime > max_age_seconds:
            shutil.rmtree(entry.path, ignore_errors=True)
