"""Review decisions on real files: approve, reject and re-run move what they should, through no link."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.errors import DecisionRefused, SymlinkNotFollowed
from daemon.finish.decisions import approve, reject, rerun, review_result
from daemon.finish.outputs import TEMP_MARKER
from daemon.journal.store import Entry, Fingerprint, Journal, profile_hash

FP = Fingerprint(size=1, mtime_ns=1, profile_hash=profile_hash("raw"), pipeline_version="1")


def studio(tmp_path: Path, **folder: object) -> Config:
    (tmp_path / "hot" / "shoot").mkdir(parents=True)
    settings = {"name": "hot", "input": tmp_path / "hot", "output": tmp_path / "out", "review_below": 0.9}
    return Config.model_validate({"journal": tmp_path / "j.sqlite", "folders": [{**settings, **folder}]})


def in_review(config: Config, tmp_path: Path, path: str = "shoot/a.jpg") -> Entry:
    """A row done with its result in review_dir, as the daemon leaves it."""
    folder = config.folders[0]
    (folder.input / path).write_bytes(b"original bytes")
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.offer("hot", path, FP)
    entry = journal.claim(["hot"])
    assert entry is not None
    result = review_result(config, folder, entry).path
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_bytes(b"result bytes")
    journal.mark_done(entry.id, str(result), 0.4, review=True)
    stored = journal.get_by_id(entry.id)
    journal.close()
    assert stored is not None
    return stored


def test_approve_moves_the_result_into_the_output_tree(tmp_path: Path) -> None:
    config = studio(tmp_path)
    entry = in_review(config, tmp_path)
    moved = approve(config, config.folders[0], entry)
    assert moved == tmp_path / "out" / "shoot" / "a.png"
    assert moved.read_bytes() == b"result bytes"
    assert not review_result(config, config.folders[0], entry).path.exists()
    assert not list((tmp_path / "out").rglob(f"{TEMP_MARKER}*"))


def test_approve_never_writes_through_a_link_planted_in_the_output_tree(tmp_path: Path) -> None:
    config = studio(tmp_path)
    entry = in_review(config, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shoot").symlink_to(elsewhere)
    with pytest.raises(SymlinkNotFollowed):
        approve(config, config.folders[0], entry)
    assert list(elsewhere.iterdir()) == []
    assert review_result(config, config.folders[0], entry).path.read_bytes() == b"result bytes"


def test_approve_refuses_a_result_that_is_a_link(tmp_path: Path) -> None:
    config = studio(tmp_path)
    entry = in_review(config, tmp_path)
    result = review_result(config, config.folders[0], entry).path
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not ours")
    result.unlink()
    result.symlink_to(secret)
    with pytest.raises(DecisionRefused):
        approve(config, config.folders[0], entry)
    assert not (tmp_path / "out" / "shoot" / "a.png").exists()


def test_reject_copies_the_original_with_a_record_and_keeps_the_rejected_result(tmp_path: Path) -> None:
    config = studio(tmp_path)
    entry = in_review(config, tmp_path)
    record = reject(config, config.folders[0], entry)
    errors = tmp_path / "out-errors" / "shoot"
    assert record == errors / "a.jpg.error.json"
    fields = json.loads(record.read_text())
    assert fields["reason"].startswith("rejected by the operator")
    assert (fields["error_class"], fields["source"], fields["folder"]) == (
        "RejectedByOperator",
        "shoot/a.jpg",
        "hot",
    )
    assert (errors / "a.jpg").read_bytes() == b"original bytes"
    assert (errors / "a.rejected.png").read_bytes() == b"result bytes"
    assert not review_result(config, config.folders[0], entry).path.exists()


def test_rerun_removes_the_old_result_and_refuses_an_unknown_profile(tmp_path: Path) -> None:
    config = studio(tmp_path)
    entry = in_review(config, tmp_path)
    with pytest.raises(DecisionRefused, match="no profile named"):
        rerun(config, config.folders[0], entry, "nonesuch")
    assert review_result(config, config.folders[0], entry).path.exists()
    rerun(config, config.folders[0], entry, "product")
    assert not review_result(config, config.folders[0], entry).path.exists()


def test_rerun_is_refused_where_originals_move_away_on_success(tmp_path: Path) -> None:
    config = studio(tmp_path, on_success="move")
    entry = in_review(config, tmp_path)
    with pytest.raises(DecisionRefused, match="moves originals"):
        rerun(config, config.folders[0], entry, "product")
