"""What ``hotmatte run`` does before it takes new work: settle what a crash left behind."""

from __future__ import annotations

import os
import stat

import structlog

from daemon.beneath import open_directory, parts_of
from daemon.config import Config
from daemon.errors import SymlinkNotFollowed
from daemon.finish.outputs import Destination, remove_stale_temporaries
from daemon.journal.backend import JournalBackend
from daemon.service.folder_files import destination_for

log = structlog.get_logger("hotmatte")

#: Cluster mode: a temporary untouched this long is a dead node's, not another node's write in progress.
CLUSTER_STALE_TEMPORARY_SECONDS = 900.0


def recover_interrupted(config: Config, journal: JournalBackend) -> None:
    """Rows a crash left running go back to pending, unless their output was written meanwhile."""
    folders = {f.name: f for f in config.folders}
    for entry in journal.reset_running():
        folder = folders.get(entry.folder)
        if folder is None or entry.started_at is None:
            continue
        for root, review in ((folder.output, False), (folder.resolved_review_dir, True)):
            destination = destination_for(folder, entry.path, config, root)
            st = _result_stat(destination)
            written_after_claim = st is not None and st.st_mtime >= entry.started_at
            if written_after_claim:
                # Published (atomically) after this attempt began, but the crash came before the
                # journal heard of it: it is complete, so do not process the file twice.
                journal.mark_done(entry.id, str(destination), review=review)
                log.info("recovered", folder=folder.name, path=entry.path, output=str(destination))
                break


def remove_stale_temporaries_below(config: Config) -> None:
    """Remove the temporaries a crash left below every output, error, done and review root.

    In cluster mode other nodes write below the same roots: only temporaries untouched for
    :data:`CLUSTER_STALE_TEMPORARY_SECONDS` are removed."""
    roots = {
        r
        for f in config.folders
        for r in (f.output, f.resolved_error_dir, f.resolved_done_dir, f.resolved_review_dir)
    }
    for root in sorted(roots):
        try:
            older = CLUSTER_STALE_TEMPORARY_SECONDS if config.cluster is not None else None
            removed = remove_stale_temporaries(root, older_than=older)
        except OSError as exc:
            log.warning("stale_cleanup_failed", root=str(root), error=str(exc))
            continue
        if removed:
            log.info("stale_temporaries_removed", root=str(root), count=len(removed))


def _result_stat(destination: Destination) -> os.stat_result | None:
    """The result file's stat, or None: a link a studio user planted at its name or in a folder
    above it (below the trusted root) is no result."""
    parts = parts_of(destination.relative)
    try:
        folder = open_directory(destination.root, parts[:-1])
    except (OSError, SymlinkNotFollowed):
        return None
    try:
        st = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(folder)
    return st if stat.S_ISREG(st.st_mode) else None
