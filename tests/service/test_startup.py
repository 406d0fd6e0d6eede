"""daemon.service.startup: what a crash left behind is settled before new work is taken."""

from __future__ import annotations

import os
import time
from pathlib import Path

from daemon.config import parse_config
from daemon.journal.store import Journal
from daemon.service.folder_files import fingerprint
from daemon.service.startup import recover_interrupted


def _crashed_while_running(tmp_path: Path) -> tuple[Journal, int]:
    """A journal whose only row was claimed (running) a minute ago, and never heard of again."""
    (tmp_path / "hot").mkdir()
    (tmp_path / "hot" / "a.jpg").write_bytes(b"photo")
    config = parse_config("folders: [{name: hot, input: hot, output: out}]", tmp_path)
    journal = Journal.open(tmp_path / "journal.sqlite")
    journal.offer("hot", "a.jpg", fingerprint(config, config.folders[0], 5, 1))
    entry = journal.claim(["hot"], now=time.time() - 60)
    assert entry is not None
    return journal, entry.id


def test_an_output_published_after_the_claim_marks_the_row_done(tmp_path: Path) -> None:
    journal, entry_id = _crashed_while_running(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"result")
    config = parse_config("folders: [{name: hot, input: hot, output: out}]", tmp_path)
    recover_interrupted(config, journal)
    entry = journal.get_by_id(entry_id)
    assert entry is not None and entry.state == "done"


def test_a_link_planted_at_the_output_name_does_not_pass_for_a_result(tmp_path: Path) -> None:
    journal, entry_id = _crashed_while_running(tmp_path)
    (tmp_path / "out").mkdir()
    fresh = tmp_path / "elsewhere.png"
    fresh.write_bytes(b"not a result")
    os.symlink(fresh, tmp_path / "out" / "a.png")
    config = parse_config("folders: [{name: hot, input: hot, output: out}]", tmp_path)
    recover_interrupted(config, journal)
    entry = journal.get_by_id(entry_id)
    assert entry is not None and entry.state == "pending"


def test_a_linked_folder_above_the_result_does_not_pass_for_its_folder(tmp_path: Path) -> None:
    (tmp_path / "hot" / "shoot").mkdir(parents=True)
    (tmp_path / "hot" / "shoot" / "a.jpg").write_bytes(b"photo")
    config = parse_config("folders: [{name: hot, input: hot, output: out}]", tmp_path)
    journal = Journal.open(tmp_path / "journal.sqlite")
    journal.offer("hot", "shoot/a.jpg", fingerprint(config, config.folders[0], 5, 1))
    entry = journal.claim(["hot"], now=time.time() - 60)
    assert entry is not None
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.png").write_bytes(b"not a result")
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "shoot")
    recover_interrupted(config, journal)
    recovered = journal.get_by_id(entry.id)
    assert recovered is not None and recovered.state == "pending"
