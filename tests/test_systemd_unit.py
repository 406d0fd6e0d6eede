"""systemd/hotmatte.service: the hardening the audit taught stays in the unit."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "hotmatte.service"
#: systemd-analyze's exposure score ×10 (0–100); the unit scored 1.7 ("OK") when this was written.
MAX_EXPOSURE = 20


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_caps_memory_so_a_hostile_file_cannot_take_the_machine() -> None:
    settings = _settings()
    assert settings["MemoryMax"] and settings["MemoryHigh"]
    assert settings["MemorySwapMax"] == ["0"]


def test_set_up_errors_are_not_restarted_in_a_loop() -> None:
    settings = _settings()
    assert settings["RestartPreventExitStatus"] == ["2"]
    assert settings["Restart"] == ["on-failure"]


def test_the_unit_keeps_the_gpu_reachable() -> None:
    settings = _settings()
    for hides_the_gpu in ("PrivateDevices", "ProtectClock", "DeviceAllow", "DynamicUser"):
        assert hides_the_gpu not in settings, f"{hides_the_gpu}= hides /dev/nvidia* or breaks NAS ownership"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_rates_the_unit_ok() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, overall or result.stderr


def test_the_cluster_drop_in_only_opens_the_way_to_the_database() -> None:
    """systemd/hotmatte-cluster.conf: no hardening of the unit is loosened, only an address allowed."""
    drop_in = REPO / "systemd" / "hotmatte-cluster.conf"
    keys = {
        line.split("=", 1)[0].strip()
        for line in drop_in.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "[")) and "=" in line
    }
    assert keys == {"Wants", "After", "StartLimitIntervalSec", "IPAddressAllow"}
