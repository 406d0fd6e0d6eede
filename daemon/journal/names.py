"""File names as the journal stores them and as people read them.

POSIX names are bytes. Python hands us ``str`` with undecodable bytes as lone
surrogates (``surrogateescape``): ``b"caf\\xe9.jpg"``, as old SMB and zip
clients write Latin-1 names, becomes ``"caf\\udce9.jpg"``. SQLite cannot store
such a ``str`` as TEXT (encoding it raises), so the journal keeps every name
that is valid UTF-8 as TEXT, exactly as before, and any other name as a BLOB of
its raw bytes. Both round-trip to the same ``str``, a TEXT value never equals a
BLOB one, so ``UNIQUE (folder, path)`` still holds, and journals written before
this change need no migration (they can only hold UTF-8 names).

Where a name is shown to a person (``hotmatte status``, error records), the
odd bytes appear as ``\\xe9`` (``backslashreplace``), never as an exception.
"""

from __future__ import annotations

import os


def to_column(path: str) -> str | bytes:
    """The journal value for ``path``: itself when it is valid UTF-8, else its raw bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def from_column(value: str | bytes) -> str:
    """The ``str`` a journal value stands for (the inverse of :func:`to_column`)."""
    return value if isinstance(value, str) else os.fsdecode(value)


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` for people: undecodable bytes as ``\\xNN``, everything else unchanged."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
