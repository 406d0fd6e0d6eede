"""Missing or damaged weights stop ``process`` with one line that names the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from daemon.matting.weights import MANIFEST_NAME, WEIGHTS_NAME, resolve_weights_dir
from tests.conftest import photo, run_hotmatte, save_jpeg


def test_truncated_weights_make_process_fail_clearly(weights_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "weights"
    broken.mkdir()
    shutil.copy(weights_dir / MANIFEST_NAME, broken / MANIFEST_NAME)
    with open(weights_dir / WEIGHTS_NAME, "rb") as fh:
        (broken / WEIGHTS_NAME).write_bytes(fh.read(1 << 20))
    source = save_jpeg(tmp_path / "a.jpg", photo("coffee"))
    result = run_hotmatte("process", "-o", tmp_path / "out", source, env={"HOTMATTE_WEIGHTS": str(broken)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "corrupt" in lines[0] and f"hotmatte weights fetch --dir {broken}" in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_weights_name_the_fetch_command(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "a.jpg", photo("coffee"))
    empty = tmp_path / "nothing-here"
    result = run_hotmatte("process", "-o", tmp_path / "out", source, env={"HOTMATTE_WEIGHTS": str(empty)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"hotmatte: no model weights in {empty} (from $HOTMATTE_WEIGHTS); "
        f"run `hotmatte weights fetch --dir {empty}`"
    )


def test_location_order_is_config_then_environment_then_default(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("HOTMATTE_WEIGHTS", str(tmp_path / "env"))
    assert resolve_weights_dir(tmp_path / "cfg").directory == tmp_path / "cfg"
    assert resolve_weights_dir(None).directory == tmp_path / "env"
    monkeypatch.delenv("HOTMATTE_WEIGHTS")
    assert resolve_weights_dir(None).origin == "default"
    assert resolve_weights_dir(tmp_path / "x" / WEIGHTS_NAME).directory == tmp_path / "x"
