"""``hotmatte process`` as a user runs it: real files, a real subprocess, the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SMALL_MODEL_SIZE, photo, run_hotmatte, save_jpeg


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    """A hot folder as studios fill it: nested folders, mixed formats, one damaged file."""
    root = tmp_path / "shoot"
    save_jpeg(root / "astronaut.jpg", photo("astronaut"))
    (root / "cats").mkdir()
    Image.fromarray(photo("chelsea")).save(root / "cats" / "chelsea.png")
    save_jpeg(root / "cats" / "deep" / "rocket.jpg", photo("rocket"))
    (root / "cats" / "deep" / "notes.jpg").write_text("this is not a photo")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_folder_comes_out_mirrored_and_bad_file_is_named(shoot: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "-o", out, shoot)
    assert result.returncode == 1, result.stderr
    assert "notes.jpg" in result.stderr and "not a JPEG, PNG" in result.stderr
    assert "Traceback" not in result.stderr
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert produced == ["astronaut.png", "cats/chelsea.png", "cats/deep/rocket.png"]
    for name, source in (("astronaut.png", "astronaut"), ("cats/deep/rocket.png", "rocket")):
        rgba = np.asarray(Image.open(out / name))
        assert rgba.shape[2] == 4 and rgba.shape[:2] == photo(source).shape[:2]
    assert "4 files: 3 done, 1 failed" in result.stderr


def test_raw_alpha_cuts_the_subject_out_at_full_size(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "photo.jpg", photo("astronaut"))
    out = tmp_path / "out"
    result = run_hotmatte("process", "-o", out, "--profile", "raw", source)
    assert result.returncode == 0, result.stderr
    rgba = np.asarray(Image.open(out / "photo.png"))
    alpha = rgba[..., 3]
    # The face is kept; the flag (top left) and the wall behind the rocket (top right) are cut away.
    assert alpha[70:150, 180:260].mean() > 240
    assert alpha[0:120, 0:60].mean() < 20 and alpha[0:100, 400:].mean() < 20
    # Colours are the original's, untouched.
    original = np.asarray(Image.open(source).convert("RGB"))
    assert np.array_equal(rgba[..., :3], original)


def test_all_good_files_exit_zero(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "coffee.jpg", photo("coffee"))
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "-o", tmp_path / "out", source)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "coffee.png").is_file()


def test_usage_error_exits_two(tmp_path: Path) -> None:
    result = run_hotmatte("process", tmp_path)
    assert result.returncode == 2
    assert "-o/--output" in result.stderr


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "a.jpg", photo("coffee"))
    result = run_hotmatte("process", "--profile", "nope", "-o", tmp_path / "out", source)
    assert result.returncode == 2
    assert "unknown profile 'nope'" in result.stderr


def test_two_inputs_for_one_output_never_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    save_jpeg(folder / "same.jpg", photo("coffee"))
    Image.fromarray(photo("chelsea")).save(folder / "same.png")
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "-o", tmp_path / "out", folder)
    assert result.returncode == 1
    assert "already the output of" in result.stderr
    with Image.open(tmp_path / "out" / "same.png") as image:
        assert image.size == (photo("coffee").shape[1], photo("coffee").shape[0])


def _journal_with_failures(tmp_path: Path) -> Path:
    """A config with folder ``hot`` (input tmp/hot) and a journal holding two failed files."""
    from daemon.journal.store import Fingerprint, Journal

    (tmp_path / "hot" / "shoot").mkdir(parents=True)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"journal: {tmp_path / 'journal.sqlite'}\nconsole: null\n"
        f"folders:\n  - name: hot\n    input: {tmp_path / 'hot'}\n    output: {tmp_path / 'out'}\n"
    )
    journal = Journal.open(tmp_path / "journal.sqlite")
    for path in ("a.jpg", "shoot/b.jpg"):
        journal.offer("hot", path, Fingerprint(1, 1, "p", "1"))
        entry = journal.get("hot", path)
        assert entry is not None
        journal.mark_failed(entry.id, "CorruptInput", "truncated JPEG")
    journal.close()
    return config


def test_retry_puts_one_failed_file_back_to_pending_by_its_path_on_disk(tmp_path: Path) -> None:
    from daemon.journal.store import Journal

    config = _journal_with_failures(tmp_path)
    result = run_hotmatte("retry", "--config", config, tmp_path / "hot" / "shoot" / "b.jpg")
    assert result.returncode == 0, result.stderr
    assert "hot/shoot/b.jpg: back to pending (was CorruptInput: truncated JPEG)" in result.stdout
    journal = Journal.open_read_only(tmp_path / "journal.sqlite")
    assert [e.path for e in journal.failed()] == ["a.jpg"]
    journal.close()


def test_retry_all_and_retry_a_folder_by_name_and_nothing_left_exits_one(tmp_path: Path) -> None:
    config = _journal_with_failures(tmp_path)
    assert run_hotmatte("retry", "--config", config, "hot").stdout.endswith(
        "2 file(s) back to pending; the running daemon takes them on its next turn\n"
    )
    again = run_hotmatte("retry", "--config", config, "--all")
    assert again.returncode == 1 and again.stdout.startswith("0 file(s)")


def test_retry_of_a_path_outside_every_folder_is_a_usage_error(tmp_path: Path) -> None:
    config = _journal_with_failures(tmp_path)
    result = run_hotmatte("retry", "--config", config, tmp_path / "elsewhere.jpg")
    assert result.returncode == 2
    assert "neither a configured folder" in result.stderr
