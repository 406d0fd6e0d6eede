"""Journal pruning on a real journal with real source files, and through a real daemon at start."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.config import Folder, load_config
from daemon.finish.thumbs import thumb_key, write_thumbs
from daemon.journal.store import Fingerprint, Journal
from daemon.journal.upkeep import DAY_SECONDS, JournalUpkeep, prune_journal
from daemon.service.folder_files import fingerprint
from tests.service_harness import Daemon, folder_settings, write_config

FP = Fingerprint(1, 1, "p", "1")
LATER = 40 * DAY_SECONDS  # past the default 30 days


def folder(tmp_path: Path, name: str = "hot", **settings: object) -> Folder:
    (tmp_path / name).mkdir(exist_ok=True)
    return Folder.model_validate(
        {"name": name, "input": tmp_path / name, "output": tmp_path / f"{name}-out", **settings}
    )


def finished(journal: Journal, name: str, path: str, state: str = "done") -> int:
    journal.offer(name, path, FP)
    entry = journal.claim([name])
    assert entry is not None and entry.path == path
    if state == "done":
        journal.mark_done(entry.id, f"out/{path}.png")
    else:
        journal.mark_failed(entry.id, "CorruptInput", "truncated")
    return entry.id


def paths(journal: Journal) -> set[str]:
    with sqlite3.connect(journal.path) as db:
        return {row[0] for row in db.execute("SELECT folder || '/' || path FROM files")}


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "state" / "journal.sqlite")


def test_old_rows_whose_source_is_gone_are_pruned_and_the_rest_kept(tmp_path: Path, journal: Journal) -> None:
    hot = folder(tmp_path)
    (hot.input / "sub").mkdir()
    for name in ("present.jpg", "sub/present.jpg", "failed-present.jpg"):
        (hot.input / name).write_bytes(b"x")
    for name in ("present.jpg", "sub/present.jpg", "gone.jpg", "sub/gone.jpg"):
        finished(journal, "hot", name)
    finished(journal, "hot", "failed-gone.jpg", "failed")
    finished(journal, "hot", "failed-present.jpg", "failed")
    journal.offer("hot", "pending-gone.jpg", FP)  # never processed: not upkeep's to forget

    thumbs = journal.path.parent / "console" / "thumbs"
    for name in ("present.jpg", "gone.jpg"):
        write_thumbs(thumbs / thumb_key("hot", name), np.zeros((4, 4, 3), np.uint8), np.ones((2, 2)), {}, 1.0)

    # Rows newer than journal_keep_days are kept, source or not.
    assert prune_journal(journal, {"hot": hot}, keep_days=30) == 0
    # Forty days on: only the finished rows whose source is gone go, in every sub-folder.
    assert prune_journal(journal, {"hot": hot}, keep_days=30, now=time.time() + LATER) == 3
    # Their console thumbnails go with them.
    assert {p.name.split(".")[0] for p in thumbs.iterdir()} == {thumb_key("hot", "present.jpg")}
    assert paths(journal) == {
        "hot/present.jpg",
        "hot/sub/present.jpg",
        "hot/failed-present.jpg",
        "hot/pending-gone.jpg",
    }
    # A source present is kept whatever its age.
    assert prune_journal(journal, {"hot": hot}, keep_days=30, now=time.time() + 100 * 365 * DAY_SECONDS) == 0


def test_nothing_is_pruned_where_the_input_cannot_be_trusted(tmp_path: Path, journal: Journal) -> None:
    empty = folder(tmp_path, "empty")  # what an unmounted share's mount point looks like
    missing = folder(tmp_path, "missing")
    moved = folder(tmp_path, "moved", on_success="move")  # empty by design: originals move away
    for name in ("empty", "missing", "moved", "retired"):
        finished(journal, name, "gone.jpg")
    missing.input.rmdir()
    folders = {"empty": empty, "missing": missing, "moved": moved}  # "retired" is no longer configured
    assert prune_journal(journal, folders, keep_days=30, now=time.time() + LATER) == 1
    assert paths(journal) == {"empty/gone.jpg", "missing/gone.jpg", "retired/gone.jpg"}


def test_a_row_offered_again_while_upkeep_looked_is_not_pruned(tmp_path: Path, journal: Journal) -> None:
    finished(journal, "hot", "x.jpg")
    stale = journal.finished_before(time.time() + 1)
    journal.offer("hot", "x.jpg", Fingerprint(2, 2, "p", "1"))  # the file came back, changed
    assert journal.prune(stale) == 0
    assert paths(journal) == {"hot/x.jpg"}


def test_upkeep_vacuums_after_pruning(tmp_path: Path, journal: Journal) -> None:
    hot = folder(tmp_path)
    (hot.input / "keep.jpg").write_bytes(b"x")
    for n in range(1500):
        journal.offer("hot", f"{'long-name-' * 8}{n}.jpg", FP)
    with sqlite3.connect(journal.path) as db:
        db.execute("UPDATE files SET state = 'done', updated_at = 0")
    size_before = journal.path.stat().st_size
    upkeep = JournalUpkeep(journal, lambda: {"hot": hot}, lambda: 30.0)
    upkeep.run_once()
    assert paths(journal) == set()
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    journal.close()
    with sqlite3.connect(journal.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert journal.path.stat().st_size < size_before / 4


def test_the_daemon_prunes_at_start_and_logs_the_count(weights_dir: Path, tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], journal_keep_days=30)
    config = load_config(config_path)
    present = tmp_path / "hot" / "present.jpg"
    present.write_bytes(b"done long ago; its row must stay, or the file would be processed again")
    journal = Journal.open(config.journal)
    # The present file's row carries its real fingerprint, so the daemon leaves it as it is.
    st = present.stat()
    journal.offer("hot", "present.jpg", fingerprint(config, config.folders[0], st.st_size, st.st_mtime_ns))
    claimed = journal.claim(["hot"])
    assert claimed is not None
    journal.mark_done(claimed.id, str(tmp_path / "hot-out" / "present.png"))
    for name in ("gone-old.jpg", "gone-new.jpg"):
        finished(journal, "hot", name)
    journal.close()
    with sqlite3.connect(config.journal) as db:
        old = time.time() - 31 * DAY_SECONDS
        db.execute("UPDATE files SET updated_at = ? WHERE path != 'gone-new.jpg'", (old,))
    with Daemon(config_path) as daemon:
        (event,) = daemon.wait_for("journal_pruned", timeout=120)
        assert event["count"] == 1 and event["keep_days"] == 30
        assert daemon.terminate() == 0
        assert not daemon.named("queued")
    journal = Journal.open(config.journal)
    assert paths(journal) == {"hot/present.jpg", "hot/gone-new.jpg"}
    kept = journal.get("hot", "present.jpg")
    assert kept is not None and kept.id == claimed.id and kept.state == "done"
