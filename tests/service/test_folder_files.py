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


def _hash(tmp_path: Path, profile_yaml: str, output_format: str = "null") -> str:
    profiles = f"profiles:\n  mine: {profile_yaml}\n"
    folders = (
        f"folders:\n  - {{name: a, input: in, output: out, profile: mine, output_format: {output_format}}}\n"
    )
    config = parse_config(f"device: cuda\n{profiles}{folders}", tmp_path)
    return fingerprint(config, config.folders[0], 1, 1).profile_hash


def test_tiff_compression_redoes_only_tiff_outputs_and_its_default_keeps_existing_journals(
    tmp_path: Path,
) -> None:
    # The knob came after journals were written: at its default the hash is what it was.
    assert _portrait_hash("cuda", tmp_path) == PORTRAIT_WITH_16_CROPS
    png = _hash(tmp_path, "{extends: portrait}")
    assert _hash(tmp_path, "{extends: portrait, tiff_compression: deflate}") == png
    # Set otherwise, it changes a TIFF output's bytes (so its files are written again)...
    tiff = _hash(tmp_path, "{extends: portrait}", "tiff")
    assert _hash(tmp_path, "{extends: portrait, tiff_compression: deflate}", "tiff") == tiff
    assert _hash(tmp_path, "{extends: portrait, tiff_compression: none}", "tiff") != tiff
    assert _hash(tmp_path, "{extends: portrait, tiff_compression: lzw}", "tiff") != tiff
    # ...and nothing of a PNG's.
    assert _hash(tmp_path, "{extends: portrait, tiff_compression: none}") == png
