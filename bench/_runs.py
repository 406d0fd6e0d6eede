"""The three contenders, each run as a user runs it, timed from outside the process.

Every run reports wall seconds (start of the command, or the drop into the hot folder,
until the last output exists) and the CPU seconds the process spent: on a shared machine
CPU seconds per image are far steadier than wall time, so both are kept.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOTMATTE = [sys.executable, "-m", "daemon.cli"]
TEMP_MARKER = ".hotmatte-tmp-"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    name: str
    images: int
    outputs: int
    wall_seconds: float
    cpu_seconds: float
    #: Mean seconds per image in each pipeline stage (hotmatte only).
    stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    @property
    def images_per_second(self) -> float:
        return self.outputs / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def cpu_seconds_per_image(self) -> float:
        return self.cpu_seconds / self.outputs if self.outputs else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "images": self.images,
            "outputs": self.outputs,
            "wall_seconds": round(self.wall_seconds, 2),
            "images_per_second": round(self.images_per_second, 4),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "cpu_seconds_per_image": round(self.cpu_seconds_per_image, 3),
            "stages": {k: round(v, 4) for k, v in self.stages.items()},
            "notes": self.notes,
        }


def finished_outputs(root: Path) -> list[Path]:
    """PNG outputs below ``root``, ignoring hotmatte's temporaries."""
    if not root.is_dir():
        return []
    return [p for p in root.rglob("*.png") if TEMP_MARKER not in p.name and ".mask." not in p.name]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_command(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, str]:
    """Run ``argv`` to its end: (wall s, CPU s of it and its children, stderr+stdout tail)."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    completed = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - started
    output = (completed.stdout + completed.stderr)[-4000:]
    if completed.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {completed.returncode}:\n{output}")
    return wall, _children_cpu() - cpu_before, output


def run_process(images: Path, out: Path, count: int, timeout: float) -> RunResult:
    """``hotmatte process --profile raw``: wall time includes start-up and loading the model."""
    report = out.parent / f"{out.name}.stages.json"
    env = {**os.environ, "HOTMATTE_STAGE_REPORT": str(report)}
    argv = [*HOTMATTE, "process", "--profile", "raw", "-o", str(out), str(images)]
    wall, cpu, tail = _timed_command(argv, env, timeout)
    result = RunResult("hotmatte process", count, len(finished_outputs(out)), wall, cpu)
    summary = [line for line in tail.splitlines() if " files: " in line]
    result.notes.extend(summary[-1:])
    if report.is_file():
        data = json.loads(report.read_text())
        result.stages = {s["name"]: s["mean_seconds"] for s in data["stages"]}
        result.notes.append(f"bottleneck: {data.get('bottleneck')}")
    result.ok = result.outputs == count
    return result


def run_rembg(images: Path, out: Path, count: int, rembg: Path, model: Path, timeout: float) -> RunResult:
    """``rembg p -m dis_custom`` with our rebuilt ONNX, which rembg wants below ``$U2NET_HOME``."""
    home = out.parent / "u2net-home"
    home.mkdir(parents=True, exist_ok=True)
    link = home / model.name
    if not link.exists():
        link.symlink_to(model.resolve())
    env = {**os.environ, "U2NET_HOME": str(home)}
    extras = json.dumps({"model_path": str(link)})
    wall, cpu, _ = _timed_command(
        [str(rembg), "p", "-m", "dis_custom", "-x", extras, str(images), str(out)], env, timeout
    )
    result = RunResult("rembg p (dis_custom)", count, len(finished_outputs(out)), wall, cpu)
    result.ok = result.outputs == count
    return result


def _daemon_config(work: Path) -> Path:
    config = work / "daemon.yaml"
    config.write_text(
        "journal: journal.sqlite\n"
        "folders:\n"
        "  - name: bench\n"
        "    input: hot\n"
        "    output: out\n"
        "    profile: raw\n",
        encoding="utf-8",
    )
    (work / "hot").mkdir(parents=True, exist_ok=True)
    return config


def _process_cpu(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _wait_for_event(stdout_path: Path, event: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if f'"event": "{event}"' in stdout_path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _daemon_stage_means(log: Path) -> dict[str, float]:
    sums: dict[str, float] = {}
    done = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "done" and isinstance(record.get("timings"), dict):
            done += 1
            for stage, seconds in record["timings"].items():
                sums[stage] = sums.get(stage, 0.0) + float(seconds)
    return {stage: total / done for stage, total in sums.items()} if done else {}


def run_daemon(images: Path, work: Path, count: int, timeout: float) -> RunResult:
    """``hotmatte run``: start it, wait until it is ready, copy the shoot into the hot folder, and
    time from the first byte copied until the last output exists. CPU is the daemon's own over
    that span (start-up excluded: a daemon is already running when a shoot arrives)."""
    config = _daemon_config(work)
    log_path = work / "daemon.log"
    result = RunResult("hotmatte run (daemon)", count, 0, 0.0, 0.0)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*HOTMATTE, "run", "--config", str(config)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        if not _wait_for_event(log_path, "start", proc, timeout=120):
            result.ok = False
            result.notes.append("the daemon did not start: " + log_path.read_text(errors="replace")[-2000:])
            return result
        cpu_before = _process_cpu(proc.pid)
        started = time.perf_counter()
        shutil.copytree(images, work / "hot" / images.name)
        out = work / "out"
        deadline = time.monotonic() + timeout
        while len(finished_outputs(out)) < count and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        result.wall_seconds = time.perf_counter() - started
        result.cpu_seconds = _process_cpu(proc.pid) if proc.poll() is None else float("nan")
        result.cpu_seconds -= cpu_before
        result.outputs = len(finished_outputs(out))
        result.ok = result.outputs == count
        if not result.ok:
            result.notes.append(f"only {result.outputs} of {count} outputs before the timeout or exit")
        result.stages = _daemon_stage_means(log_path)
        result.notes.append(
            "includes the daemon's wait for each file to be stable (stable_seconds 2, min age 1)"
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result
