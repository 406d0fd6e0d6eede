"""``hotmatte --version`` through the real command: what it says, and that it stays fast."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.conftest import REPO, run_hotmatte


def test_version_names_the_package_the_model_and_torch(weights_dir: Path) -> None:
    result = run_hotmatte("--version")
    assert result.returncode == 0, result.stderr
    first, model, runtime = result.stdout.splitlines()
    assert first == f"hotmatte {version('hotmatte')}"
    assert model.startswith("model isnet-general-use (float16, sha256 ") and str(weights_dir) in model
    assert runtime.startswith(f"torch {version('torch')}, Python ")


def test_version_without_weights_says_how_to_get_them(tmp_path: Path) -> None:
    result = run_hotmatte("--version", env={"HOTMATTE_WEIGHTS": str(tmp_path)})
    assert result.returncode == 0
    assert f"model: none installed in {tmp_path} (run `hotmatte weights fetch`)" in result.stdout


def test_version_does_not_import_torch() -> None:
    # -X importtime lists every module the command imported: torch alone costs seconds.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "daemon.cli", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "daemon.version" in imported
    assert not {name for name in imported if name == "torch" or name.startswith("torch.")}
