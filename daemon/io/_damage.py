"""Turning a decoder's failure on a damaged file into a project error, at the reader boundary.

Every reader's public calls (open, ``proxy``, ``bands``, ``read``) run inside
:func:`damaged_bytes_are_input_errors`. What the libraries under them (Pillow, OpenCV,
tifffile, imagecodecs, struct, zlib, numpy on impossible shapes) raise on bytes that do not
make sense becomes :class:`~daemon.errors.CorruptInput` at once, naming the file, the format
and what the decoder said, with the remedy (re-export or re-copy); a ``CorruptInput`` a
format module raised itself ("truncated PSD: ...") gets the name and the remedy too. Nothing
of that kind is worth retrying: the same bytes fail the same way.

Failures of the *filesystem* are not the file's fault and must stay transient: the daemon
retries an ``OSError`` with backoff. The two are told apart by ``errno``: an error the
kernel reported on ``read()`` (EIO, ESTALE from a share, ENOENT for a file that vanished)
carries one; Pillow's "image file is truncated", "broken data stream" and "cannot identify
image file" are ``OSError`` without one.

A ``MemoryError`` while decoding one file (a header within ``max_megapixels`` whose data
still asks for absurd buffers) is :class:`~daemon.errors.TooLarge` for that file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import cv2

from daemon.errors import CorruptInput, HotmatteError, TooLarge

REMEDY = "re-export or re-copy the file"
# What decoders raise on nonsense bytes. TypeError, IndexError, KeyError and ArithmeticError
# come from tifffile and from our own arithmetic on damaged tag values (a tuple where a
# number belongs, a zero strip height); imagecodecs' codec errors are RuntimeErrors.
DAMAGED_BYTES: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    ArithmeticError,
    EOFError,
    SyntaxError,
    RuntimeError,
    struct.error,
    zlib.error,
    cv2.error,
)


def is_filesystem_error(error: BaseException) -> bool:
    """An ``OSError`` the kernel reported (it has an errno): the disk or share, not the bytes."""
    return isinstance(error, OSError) and error.errno is not None


def _detail(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if not text:
        return type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def damaged_bytes_are_input_errors(name: str, what: str) -> Iterator[None]:
    """Re-raise a decoder's failure on ``name`` (a ``what``: "PNG", "TIFF"...) as a project error."""
    try:
        yield
    except CorruptInput as error:
        # The format modules' own refusals ("truncated PSD: ...") get the file's name and the remedy.
        if str(error).startswith(f"{name}: "):
            raise
        raise CorruptInput(f"{name}: {error}; {REMEDY}") from error
    except HotmatteError:
        raise
    except MemoryError:
        raise TooLarge(
            f"{name}: decoding this {what} needs more memory than is available; its header or data "
            f"declares impossible sizes ({REMEDY})"
        ) from None
    except OSError as error:
        if is_filesystem_error(error):
            raise
        raise CorruptInput(f"{name}: damaged {what} ({_detail(error)}); {REMEDY}") from error
    except DAMAGED_BYTES as error:
        raise CorruptInput(f"{name}: damaged {what} ({_detail(error)}); {REMEDY}") from error
