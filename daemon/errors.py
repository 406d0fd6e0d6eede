"""Every error hotmatte raises on purpose, and what the daemon does with it.

====================  ==========================================================
error                 what the daemon does
====================  ==========================================================
ConfigError           At start: print one line per problem, exit 2.
                      On SIGHUP: log it, keep running on the old config.
WeightsError          Stop at once with one line naming ``hotmatte weights
                      fetch``. Never retried: nothing will fix itself.
JournalUnusable       At start: one line naming the journal and the repair, exit 2
                      (systemd does not restart: ``RestartPreventExitStatus=2``).
DatabaseUnavailable   Cluster mode: the PostgreSQL server cannot be reached. At
                      start: one line, exit 1 (systemd restarts the node). While
                      running: the node stops taking work and waits, retrying
                      the same journal transition until the server answers;
                      outcomes of files in flight are recorded then (a file
                      another node took back meanwhile is not recorded twice).
                      The console's pages say "the journal cannot be read"
                      after 5 s; ``hotmatte retry`` exits 1 after 30 s.
InputError            Permanent for that file: the journal marks it failed, the
  UnsupportedInput    original is copied into the folder's ``error_dir`` with a
  CorruptInput        ``<name>.error.json`` beside it. Other files go on.
  TooLarge
  OutputCollision     (a.jpg and a.png would both write a.png: the later loses)
  NoFaceFound         (the id_photo profile found no face to frame)
  OutputNameTooLong   (the result's name, with its new extension, would be
                      longer than the 255 bytes a file system allows)
  SymlinkNotFollowed  (a link in a hot folder, or below an output, error,
                      review or done root: nothing is read or written through it;
                      recorded without copying anything)
  NotARegularFile     (a FIFO, socket or device in a hot folder: never opened for
                      a blocking read, recorded without copying anything)
  DiedWhileProcessing (the daemon died twice in a row while this file was
                      running: quarantined instead of retried, so one poisonous
                      file cannot make a crash loop)
  RejectedByOperator  (the operator rejected its result on the console's Review
                      page: copied to ``error_dir`` with its record, like any)
DecisionRefused       The console refuses an operator's decision (the file left
                      review meanwhile, its result is gone or is a link): the
                      page says why; nothing is moved and the journal is unchanged.
TransientError        Retried with exponential backoff; the file stays pending.
  ShareUnavailable    The folder waits (logged once) until the share is back.
                      Also raised when an output, error, review or done root
                      is gone, renamed away or no longer the filesystem it
                      was at start (its ``.hotmatte-root`` marker): nothing
                      is written there, and it is never silently recreated.
  DiskFull            Not the file's fault: the file goes back to pending
                      uncounted and its folder waits (logged once) until a
                      probe finds space; nothing half-written is left visible.
  DeviceOutOfMemory   The batch is retried one image at a time, then with
                      backoff like any transient error. (Running out of GPU
                      memory while *refining* a file is no error: that file
                      is finished on the CPU, same pixels, and a warning
                      ``finish_on_cpu`` is logged.)
UnsafePath            The console refuses the request (HTTP 400): a folder or
                      path parameter that is unknown, absolute, has ``..``, a
                      link or an encoded variant (daemon/console/paths.py).
                      Nothing is read or written; processing is not touched.
====================  ==========================================================

Permissions: outputs, error copies and error records are created with mode 0666
(folders 0777) less the service's umask; an original's mode is never copied.

Library exceptions are translated where they arise: every reader turns any failure of
damaged bytes into ``CorruptInput``, ``TooLarge`` or ``UnsupportedInput`` at its boundary
(``daemon/io/_damage.py``), while an ``OSError`` the operating system reports (EIO, ESTALE
from a share) stays an ``OSError`` and is retried like a transient error.

Anything else that escapes a stage is a bug: the file is marked failed with the
exception class in its error record (so it is never silently lost) and the
daemon keeps running.
"""

from __future__ import annotations


class HotmatteError(Exception):
    """Base class of every error hotmatte raises on purpose."""


class ConfigError(HotmatteError):
    """The configuration is invalid. ``problems`` holds one line per bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class WeightsError(HotmatteError):
    """The model weights are missing, corrupt, or could not be fetched."""


class InputError(HotmatteError):
    """A file that will never process, however often it is retried."""


class UnsupportedInput(InputError):
    """The file's format or mode is one hotmatte does not handle."""


class CorruptInput(InputError):
    """The file claims a format but cannot be decoded (truncated, damaged, empty)."""


class OutputCollision(InputError):
    """Another file (``a.jpg`` beside ``a.png``) already owns the same output path."""


class TooLarge(InputError):
    """The header declares more pixels than ``max_megapixels`` allows."""


class OutputNameTooLong(InputError):
    """The result's file name would be longer than a file system allows (255 bytes)."""


class NoFaceFound(InputError):
    """The ``id_photo`` profile found no face to frame the crop on."""


class SymlinkNotFollowed(InputError):
    """A symbolic link below a hot folder or an output root: never followed, read or written through."""


class NotARegularFile(InputError):
    """A FIFO, socket or device where a photo was expected: never read."""


class DiedWhileProcessing(InputError):
    """The daemon died while processing this file, twice in a row: quarantined, not retried."""


class RejectedByOperator(InputError):
    """The operator rejected the result on the console's Review page."""


class DecisionRefused(HotmatteError):
    """A Review decision that cannot be carried out; nothing was changed."""


class JournalUnusable(HotmatteError):
    """The journal cannot be opened or written (corrupt, read-only); ``hotmatte run`` exits 2."""


class UnsafePath(HotmatteError):
    """A request named a path outside the configured folders (or through a link): refused."""


class DatabaseUnavailable(HotmatteError):
    """Cluster mode: the PostgreSQL server cannot be reached (down, restarting, network gone)."""


class TransientError(HotmatteError):
    """Something outside the file failed; the same file may succeed later."""


class ShareUnavailable(TransientError):
    """The hot folder's filesystem (often a network share) cannot be reached."""


class DiskFull(TransientError):
    """No space left where the output or the journal is written."""


class DeviceOutOfMemory(TransientError):
    """The accelerator ran out of memory for this batch."""
