"""``hotmatte status`` from a real journal file and a real config file."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime
from pathlib import Path

from daemon.journal.store import Fingerprint, Journal
from daemon.pipeline.stage_stats import StageClock, report_path_for, save_report
from daemon.service.status import show_status
from tests.conftest import run_hotmatte

FP = Fingerprint(1, 1, "p", "1")


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "hotmatte.yaml"
    config.write_text(
        "journal: state/journal.sqlite\n"
        "folders:\n"
        "  - {name: studio, input: hot, output: out}\n"
        "  - {name: empty, input: hot2, output: out2}\n"
    )
    return config


def test_counts_per_folder_and_state_and_the_last_failures(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    journal = Journal.open(tmp_path / "state" / "journal.sqlite")
    for n in range(4):
        journal.offer("studio", f"{n}.jpg", FP)
    done = journal.claim(["studio"])
    failed = journal.claim(["studio"])
    journal.claim(["studio"])
    assert done is not None and failed is not None
    journal.mark_done(done.id, "review/0.png", confidence=0.2, review=True)
    journal.mark_failed(failed.id, "CorruptInput", "truncated JPEG")
    journal.offer("retired", "old.jpg", FP)
    journal.close()

    out = io.StringIO()
    assert show_status(config, out) == 0
    lines = out.getvalue().splitlines()
    header = lines[1].split()
    assert header == ["folder", "pending", "running", "done", "failed", "review"]
    assert lines[2].split() == ["studio", "1", "1", "1", "1", "1"]
    assert lines[3].split() == ["empty", "0", "0", "0", "0", "0"]
    assert lines[4].split()[:6] == ["retired", "1", "0", "0", "0", "0"]
    assert "no longer configured" in lines[4]
    text = out.getvalue()
    assert "studio/1.jpg" in text and "CorruptInput: truncated JPEG" in text


def test_no_journal_yet_says_so_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = io.StringIO()
    assert show_status(config, out) == 1
    assert "no journal" in out.getvalue()
    assert not (tmp_path / "state").exists()


def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("folders: 3\n")
    assert show_status(config, io.StringIO()) == 2


def test_stage_timings_saved_by_the_daemon_are_shown(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    journal = Journal.open(tmp_path / "state" / "journal.sqlite")
    journal.close()
    clock = StageClock({"decode": 1, "model": 1, "finish": 2})
    clock.record("decode", 0.1)
    clock.record("model", 1.2)
    clock.record("finish", 0.5)
    save_report(clock.report(), report_path_for(tmp_path / "state" / "journal.sqlite"))
    out = io.StringIO()
    assert show_status(config, out) == 0
    text = out.getvalue()
    assert "pipeline stages" in text and "bottleneck: " in text
    assert any(line.split()[:4] == ["model", "1", "1", "1.200"] for line in text.splitlines())


def test_status_json_through_the_real_command_has_the_documented_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    journal = Journal.open(tmp_path / "state" / "journal.sqlite")
    for n in range(3):
        journal.offer("studio", f"{n}.jpg", FP)
    done, failed = journal.claim(["studio"]), journal.claim(["studio"])
    assert done is not None and failed is not None
    journal.mark_done(done.id, "review/0.png", confidence=0.1, review=True)
    journal.mark_failed(failed.id, "CorruptInput", "truncated JPEG")
    journal.close()
    clock = StageClock({"decode": 1, "model": 1, "finish": 1})
    clock.record("model", 1.5)
    save_report(clock.report(), report_path_for(tmp_path / "state" / "journal.sqlite"))

    result = run_hotmatte("status", "--json", "--config", config)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == 1
    assert document["journal"] == str(tmp_path / "state" / "journal.sqlite")
    assert document["folders"] == [
        {
            "name": "studio",
            "configured": True,
            "pending": 1,
            "running": 0,
            "done": 1,
            "failed": 1,
            "review": 1,
        },
        {
            "name": "empty",
            "configured": True,
            "pending": 0,
            "running": 0,
            "done": 0,
            "failed": 0,
            "review": 0,
        },
    ]
    (failure,) = document["failures"]
    assert failure["folder"] == "studio" and failure["path"] == "1.jpg" and failure["attempts"] == 1
    assert failure["error_class"] == "CorruptInput" and failure["reason"] == "truncated JPEG"
    assert datetime.fromisoformat(failure["at"]).tzinfo is not None
    assert document["stages"]["bottleneck"] == "model"
    assert {s["name"] for s in document["stages"]["stages"]} == {"decode", "model", "finish"}


def test_status_json_without_a_journal_writes_nothing_on_stdout_and_exits_1(tmp_path: Path) -> None:
    result = run_hotmatte("status", "--json", "--config", write_config(tmp_path))
    assert result.returncode == 1
    assert result.stdout == "" and "no journal" in result.stderr


def test_files_waiting_for_disk_space_and_names_that_are_not_utf8_are_shown(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    journal = Journal.open(tmp_path / "state" / "journal.sqlite")
    odd = os.fsdecode(b"caf\xe9.jpg")  # as an old SMB client writes it
    for name in ("a.jpg", "b.jpg", odd):
        journal.offer("studio", name, FP)
    claimed = [journal.claim(["studio"]) for _ in range(3)]
    for entry in claimed[:2]:
        assert entry is not None
        journal.retry_later(entry.id, "DiskFull", "no space left writing out/x.png", 0.0, count_attempt=False)
    journal.close()
    result = run_hotmatte("status", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "studio: 2 file(s) waiting for disk space (no space left writing out/x.png)" in result.stdout

    journal = Journal.open(tmp_path / "state" / "journal.sqlite")
    waiting = journal.get("studio", odd)
    assert waiting is not None
    journal.mark_failed(waiting.id, "CorruptInput", f"{odd} is truncated")
    journal.close()
    result = run_hotmatte("status", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "studio/caf\\xe9.jpg" in result.stdout and "caf\\xe9.jpg is truncated" in result.stdout
