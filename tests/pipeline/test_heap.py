"""The heap keeps freed buffers for the next file, and gives them back when asked.

Each check runs in a fresh interpreter: the arena limit binds only threads that have not
allocated yet, and pytest's process already has several.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.conftest import HOTMATTE, REPO, photo
from tests.service_harness import Daemon, folder_settings, write_config

#: 64 MiB of float32: above glibc's default mmap threshold, below ours.
BUFFER_FLOATS = 16 << 20
#: Page faults count the pages the kernel hands out (and zeroes) only while transparent huge
#: pages are not forced on every mapping; with them, a fault brings in 2 MiB at once.
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
THP_ALWAYS = THP_SETTING.exists() and "[always]" in THP_SETTING.read_text()
needs_small_pages = pytest.mark.skipif(THP_ALWAYS, reason="transparent huge pages are 'always' here")


def _run(script: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_kept_memory_goes_back_to_the_system_when_asked() -> None:
    result = _run(f"""
        import json, threading
        import torch
        from daemon.pipeline.heap import give_back_free_memory, keep_freed_buffers
        def rss_mb():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
        assert keep_freed_buffers()
        start = rss_mb()
        def work():
            buffers = [torch.ones({BUFFER_FLOATS}) for _ in range(6)]
            del buffers
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        kept = rss_mb()
        give_back_free_memory()
        print(json.dumps({{"start": start, "kept": kept, "given_back": rss_mb()}}))
    """)
    assert result["kept"] - result["start"] >= 300, f"the freed 384 MiB should still be held: {result}"
    assert result["given_back"] - result["start"] <= 64, f"and handed back after the call: {result}"


def _process_faults(config: Path, shoot: Path, out: Path) -> int:
    """Minor page faults of one ``hotmatte process`` run (os.wait4: that child's own usage)."""
    child = subprocess.Popen(
        [*HOTMATTE, "process", "--config", str(config), "-o", str(out), str(shoot)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0
    assert len(list(out.glob("*.png"))) == 3
    return usage.ru_minflt


@needs_small_pages
def test_process_faults_far_fewer_pages_per_image_unless_switched_off(tmp_path: Path) -> None:
    # The model runs at 1024² whatever the photo's size: about 1 GB of activations per image in
    # fp32, each page faulted in again under glibc's defaults. fp32 on every machine: in bf16
    # (auto's choice on AMX and AMD's avx512_bf16) they are half that, and so are the counts.
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(3):
        Image.fromarray(photo("astronaut")).resize((320 + 32 * i, 240)).save(shoot / f"p{i}.jpg", quality=90)
    faults = {}
    for reuse in (True, False):
        config = tmp_path / f"reuse-{reuse}.yaml"
        config.write_text(yaml.safe_dump({"device": "cpu", "precision": "fp32", "reuse_freed_memory": reuse}))
        faults[reuse] = _process_faults(config, shoot, tmp_path / f"out-{reuse}")
    assert faults[True] * 2 < faults[False], f"page faults with and without reuse: {faults}"
    assert faults[False] - faults[True] >= 3 * 100_000, f"at least 100,000 pages per image: {faults}"


@needs_small_pages
def test_the_daemon_reuses_buffers_within_a_shoot_and_hands_them_back_once_idle(tmp_path: Path) -> None:
    folder = folder_settings(tmp_path, "shoot")
    # fp32 for the same reason as above: the thresholds are for fp32's activations.
    config = write_config(tmp_path / "config.yaml", [folder], model_size=1024, precision="fp32")
    with Daemon(config) as daemon:
        daemon.wait_for("start", timeout=120)
        for i in range(4):  # dropped together: the pipeline is never empty between them
            Image.fromarray(photo("astronaut")).resize((320 + 32 * i, 240)).save(
                tmp_path / "shoot" / f"p{i}.jpg", quality=90
            )
        daemon.wait_for("done", count=1, timeout=120)
        first = _minor_faults(daemon.proc.pid)
        daemon.wait_for("done", count=4, timeout=120)
        per_image = (_minor_faults(daemon.proc.pid) - first) / 3
        # glibc's defaults fault in about 190,000 pages per 1024² image (the activations).
        assert per_image < 60_000, f"{per_image:.0f} page faults per image: the buffers are not reused"
        peak = daemon.memory_mb("VmHWM")
        daemon.wait_until(
            lambda: daemon.memory_mb() < peak - 250, timeout=10, what="the kept memory handed back"
        )
        assert daemon.terminate() == 0


def _minor_faults(pid: int) -> int:
    # /proc/PID/stat: field 10 is minflt; the command name (field 2) is in parentheses.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[7])
