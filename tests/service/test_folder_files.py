"""A folder's fingerprint follows what its profile will do on the configured device."""

from __future__ import annotations

from pathlib import Path

from daemon.config import parse_config
from daemon.service.folder_files import fingerprint

#: ``portrait``'s profile hash before ``detail_budget: auto`` (when it was a fixed 16 crops).
PORTRAIT_WITH_16_CROPS = "5d4e381969677bdc"


def _portrait_hash(device: str, tmp_path: Path, budget: str | None = None) -> str:
    profile = "portrait"
    profiles = ""
    if budget is not None:
        profile = "mine"
        profiles = f"profiles:\n  mine: {{extends: portrait, detail_budget: {budget}}}\n"
    folders = f"folders:\n  - {{name: a, input: in, output: out, profile: {profile}}}\n"
    text = f"device: {device}\n{profiles}{folders}"
    config = parse_config(text, tmp_path)
    return fingerprint(config, config.folders[0], 1, 1).profile_hash


def test_auto_budget_keeps_cuda_journals_and_redoes_files_the_cpu_cuts_differently(tmp_path: Path) -> None:
    # On CUDA `auto` is the 16 it replaced: the same output, so files already done stay done.
    assert _portrait_hash("cuda", tmp_path) == PORTRAIT_WITH_16_CROPS
    # On a CPU it runs fewer, larger crops: a different output, so a different fingerprint.
    assert _portrait_hash("cpu", tmp_path) != PORTRAIT_WITH_16_CROPS
    # An explicit count is what runs on any device.
    assert _portrait_hash("cpu", tmp_path, "16") == _portrait_hash("cuda", tmp_path, "16")
    assert _portrait_hash("cpu", tmp_path, "auto") == _portrait_hash("cpu", tmp_path, "4")
