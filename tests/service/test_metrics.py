"""``/metrics``: what a real daemon reports over HTTP, parsed as Prometheus text, and its memory."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import Folder, Retry
from daemon.errors import CorruptInput, DeviceOutOfMemory
from daemon.finish.outputs import Destination
from daemon.journal.store import Fingerprint, Journal
from daemon.pipeline.stages import Job, Outcome
from daemon.service.metrics import FolderFacts, ServiceMetrics
from daemon.service.outcomes import OutcomeRecorder, Running
from tests.conftest import SMALL_MODEL_SIZE
from tests.service_harness import Daemon, folder_settings, small_photo_jpeg, write_config

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One ``/metrics`` page: every sample by (name, labels), and the family each name belongs to."""

    text: str
    samples: dict[tuple[str, Labels], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def values(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def scrape(base: str) -> Scrape:
    text = urllib.request.urlopen(base + "metrics", timeout=10).read().decode()
    samples: dict[tuple[str, Labels], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(text, samples, types)


def console_url(daemon: Daemon) -> str:
    return str(daemon.wait_for("console", timeout=120)[0]["url"])


@dataclass
class Run:
    root: Path
    scrape: Scrape
    dropped_at: float
    finished_at: float


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A daemon that took one good and one corrupt file in ``hot``, and one good file into
    ``doubtful`` (review_below 1.0: its result goes to review), then scraped once all settled."""
    root = tmp_path_factory.mktemp("metrics")
    config = write_config(
        root / "c.yaml",
        [folder_settings(root, "hot"), folder_settings(root, "doubtful", review_below=1.0)],
        console={"listen": "127.0.0.1:0"},
    )
    jpeg = small_photo_jpeg()
    with Daemon(config) as daemon:
        base = console_url(daemon)
        dropped_at = time.time()
        (root / "hot" / "good.jpg").write_bytes(jpeg)
        (root / "hot" / "corrupt.jpg").write_bytes(jpeg[: len(jpeg) // 2])
        (root / "doubtful" / "unsure.jpg").write_bytes(jpeg)
        daemon.wait_for("done", count=2, timeout=180)
        daemon.wait_for("failed", timeout=60)
        finished_at = time.time()
        # Folder facts are published every couple of seconds: wait until they show the quiet pipeline.
        last: list[Scrape] = []

        def settled() -> bool:
            last[:] = [scrape(base)]
            return last[0].value("hotmatte_in_flight_files") == 0 and bool(
                last[0].values("hotmatte_folder_up")
            )

        daemon.wait_until(settled, timeout=30, what="a scrape after every file settled")
        yield Run(root, last[0], dropped_at, finished_at)
        assert daemon.terminate() == 0


def test_files_are_counted_by_folder_and_outcome_and_failures_by_error_class(finished_run: Run) -> None:
    s = finished_run.scrape
    assert s.types["hotmatte_files_processed"] == "counter"
    processed = {
        (folder, outcome): s.value("hotmatte_files_processed_total", folder=folder, outcome=outcome)
        for folder in ("hot", "doubtful")
        for outcome in ("done", "review", "retry", "failed")
    }
    assert processed == {
        ("hot", "done"): 1,
        ("hot", "review"): 0,
        ("hot", "retry"): 0,
        ("hot", "failed"): 1,
        ("doubtful", "done"): 0,
        ("doubtful", "review"): 1,
        ("doubtful", "retry"): 0,
        ("doubtful", "failed"): 0,
    }
    assert s.values("hotmatte_failures_total") == {
        frozenset({("folder", "hot"), ("error_class", "CorruptInput")}): 1
    }


def test_queue_sizes_per_folder_and_state_come_from_the_journal(finished_run: Run) -> None:
    s = finished_run.scrape
    assert s.types["hotmatte_queue_files"] == "gauge"
    queue = {(dict(k)["folder"], dict(k)["state"]): v for k, v in s.values("hotmatte_queue_files").items()}
    assert queue == {
        ("hot", "pending"): 0,
        ("hot", "running"): 0,
        ("hot", "done"): 1,
        ("hot", "failed"): 1,
        ("hot", "review"): 0,
        ("doubtful", "pending"): 0,
        ("doubtful", "running"): 0,
        ("doubtful", "done"): 0,  # its one result is in review, counted there only
        ("doubtful", "failed"): 0,
        ("doubtful", "review"): 1,
    }


def test_stage_and_drop_to_output_histograms_hold_each_finished_file(finished_run: Run) -> None:
    s = finished_run.scrape
    assert s.types["hotmatte_stage_duration_seconds"] == "histogram"
    for stage in ("decode", "model", "finish"):
        # The two good files went through every stage; the corrupt one failed inside decode.
        assert s.value("hotmatte_stage_duration_seconds_count", stage=stage) == 2
        assert s.value("hotmatte_stage_duration_seconds_sum", stage=stage) > 0
        assert s.value("hotmatte_stage_duration_seconds_bucket", stage=stage, le="+Inf") == 2
    assert s.types["hotmatte_drop_to_output_seconds"] == "histogram"
    window = finished_run.finished_at - finished_run.dropped_at + 1.0
    for folder in ("hot", "doubtful"):
        assert s.value("hotmatte_drop_to_output_seconds_count", folder=folder) == 1
        assert 0 < s.value("hotmatte_drop_to_output_seconds_sum", folder=folder) <= window
        last = s.value("hotmatte_last_success_timestamp_seconds", folder=folder)
        assert finished_run.dropped_at <= last <= finished_run.finished_at + 1.0


def test_folder_share_space_and_model_gauges(finished_run: Run) -> None:
    s = finished_run.scrape
    for folder in ("hot", "doubtful"):
        assert s.value("hotmatte_folder_up", folder=folder) == 1
        assert s.value("hotmatte_share_reachable", folder=folder) == 1
        assert s.value("hotmatte_folder_waiting_for_space", folder=folder) == 0
    free = {(dict(k)["folder"], dict(k)["root"]): v for k, v in s.values("hotmatte_root_free_bytes").items()}
    # Roots that exist by now: hot's output and error folders, doubtful's review folder.
    assert {("hot", "output"), ("hot", "error"), ("doubtful", "review")} <= set(free)
    statvfs = os.statvfs(finished_run.root)
    assert all(0 < v <= statvfs.f_blocks * statvfs.f_frsize for v in free.values())
    assert s.types["hotmatte_model_info"] == "gauge"  # an Info is a gauge of 1 in the text format
    [(labels, value)] = s.values("hotmatte_model_info").items()
    model = dict(labels)
    assert value == 1 and model.pop("precision") in ("fp32", "bf16")
    assert model == {"device": "cpu", "model_size": str(SMALL_MODEL_SIZE)}


def test_no_label_value_is_a_file_path(finished_run: Run) -> None:
    names = ("good", "corrupt", "unsure", str(finished_run.root))
    values = {v for (_name, labels) in finished_run.scrape.samples for _k, v in labels}
    assert values  # folders, states, outcomes...
    for value in values:
        assert "/" not in value and os.sep not in value, value
        assert not any(name in value for name in names), value


def test_every_metric_has_the_hotmatte_prefix_and_counters_end_in_total(finished_run: Run) -> None:
    s = finished_run.scrape
    ours = [name for name in s.types if not name.startswith(("python_", "process_"))]
    assert ours and all(name.startswith("hotmatte_") for name in ours), ours
    counters = [
        name for (name, _labels) in s.samples if s.types.get(name.removesuffix("_total")) == "counter"
    ]
    assert all(n.endswith(("_total", "_created")) for n in counters), counters


# --- the recorder's transitions, with a real journal (retries cannot be provoked from outside) ---


def test_a_transient_error_counts_a_retry_then_a_failure_and_each_try_by_its_error_class(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite")
    metrics = ServiceMetrics(journal.path)
    (tmp_path / "hot").mkdir()
    folder = Folder.model_validate({"name": "hot", "input": tmp_path / "hot", "output": tmp_path / "out"})
    recorder = OutcomeRecorder(
        journal, lambda: Retry(max_attempts=2, backoff_seconds=1, backoff_max_seconds=1), metrics=metrics
    )
    source = folder.input / "a.jpg"
    source.write_bytes(b"abc")
    journal.offer("hot", "a.jpg", Fingerprint(3, 1, "p", "1"))
    for error in (DeviceOutOfMemory("no memory"), DeviceOutOfMemory("still none")):
        entry = journal.claim(["hot"], now=time.time() + 60)  # past the backoff
        assert entry is not None
        job = Job(source, Destination.at(folder.output / "a.png"), "raw", entry.id)
        recorder.record(Running(folder, entry, time.monotonic()), Outcome(job, None, error, {}))
    journal.offer("hot", "b.jpg", Fingerprint(3, 2, "p", "1"))
    entry = journal.claim(["hot"])
    assert entry is not None
    (folder.input / "b.jpg").write_bytes(b"abc")
    job = Job(folder.input / "b.jpg", Destination.at(folder.output / "b.png"), "raw", entry.id)
    recorder.record(Running(folder, entry, time.monotonic()), Outcome(job, None, CorruptInput("bad"), {}))

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("hotmatte_files_processed_total", folder="hot", outcome="retry") == 1
    assert sample("hotmatte_files_processed_total", folder="hot", outcome="failed") == 2
    assert sample("hotmatte_failures_total", folder="hot", error_class="DeviceOutOfMemory") == 2
    assert sample("hotmatte_failures_total", folder="hot", error_class="CorruptInput") == 1
    assert sample("hotmatte_queue_files", folder="hot", state="failed") == 2
    metrics.close()
    journal.close()


def test_two_services_have_separate_registries(tmp_path: Path) -> None:
    first, second = ServiceMetrics(tmp_path / "a.sqlite"), ServiceMetrics(tmp_path / "b.sqlite")
    first.outcome("hot", "done")
    assert (
        first.registry.get_sample_value(
            "hotmatte_files_processed_total", {"folder": "hot", "outcome": "done"}
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "hotmatte_files_processed_total", {"folder": "hot", "outcome": "done"}
        )
        is None
    )


def test_a_journal_that_cannot_be_read_leaves_the_queue_out_and_the_scrape_whole(tmp_path: Path) -> None:
    metrics = ServiceMetrics(tmp_path / "no-such-dir" / "journal.sqlite")
    metrics.outcome("hot", "done")
    text = generate_latest(metrics.registry).decode()
    assert "hotmatte_queue_files{" not in text
    assert 'hotmatte_files_processed_total{folder="hot",outcome="done"} 1.0' in text


def test_a_watched_folder_shows_an_empty_queue_before_its_first_file(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite")
    metrics = ServiceMetrics(journal.path)
    metrics.publish({"idle": FolderFacts(up=True, reachable=True, waiting_for_space=False)}, 0)
    for state in ("pending", "running", "done", "failed", "review"):
        assert (
            metrics.registry.get_sample_value("hotmatte_queue_files", {"folder": "idle", "state": state}) == 0
        )
    metrics.close()
    journal.close()


def test_a_folder_removed_by_a_reload_leaves_the_folder_gauges_and_keeps_its_counters(tmp_path: Path) -> None:
    first, second = folder_settings(tmp_path, "first"), folder_settings(tmp_path, "second")
    config = write_config(tmp_path / "c.yaml", [first, second], console={"listen": "127.0.0.1:0"})
    with Daemon(config) as daemon:
        base = console_url(daemon)
        (tmp_path / "second" / "a.jpg").write_bytes(small_photo_jpeg())
        daemon.wait_for("done", timeout=180)
        daemon.wait_until(
            lambda: len(scrape(base).values("hotmatte_folder_up")) == 2, timeout=30, what="both folders up"
        )
        write_config(config, [first], console={"listen": "127.0.0.1:0"})
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("reload")
        daemon.wait_until(
            lambda: set(scrape(base).values("hotmatte_folder_up")) == {frozenset({("folder", "first")})},
            timeout=30,
            what="only first's gauge left",
        )
        s = scrape(base)
        assert s.value("hotmatte_files_processed_total", folder="second", outcome="done") == 1
        assert s.value("hotmatte_queue_files", folder="second", state="done") == 1  # still in the journal
        assert daemon.terminate() == 0


# --- memory ---------------------------------------------------------------------------------------

WARM_UP = 60  # good files first, dropped at once: the model's batch sizes and pools settle
FILES = 300
GOOD_EVERY = 5  # after the warm-up, one in five goes through the model; the others fail fast
MAX_GROWTH_MIB = 15.0


def test_the_daemon_memory_does_not_grow_while_metrics_and_the_overview_are_loaded_over_300_files(
    tmp_path: Path,
) -> None:
    """RSS once warm (60 good files through the model) against the end of 240 more.

    The daemon's RSS steps up during its first files (model buffers, allocator pools) and is flat
    after: bench/console_memory.py shows it over 1,000 files.
    """
    config = write_config(
        tmp_path / "c.yaml",
        [folder_settings(tmp_path, "hot")],
        console={"listen": "127.0.0.1:0"},
        # One batch shape: each new batch size costs the CPU backend a one-off set of kernels and
        # buffers (a bounded step of ~20 MiB over the first few hundred files), which is not the
        # growth this test looks for.
        workers={"decode": 1, "finish": 1, "queue_size": 4, "batch_size": 1},
    )
    jpeg = small_photo_jpeg()
    corrupt = jpeg[: len(jpeg) // 2]
    with Daemon(config) as daemon:
        base = console_url(daemon)
        stop = threading.Event()
        loads = [0]

        def visitor() -> None:  # an operator's browser and a Prometheus server, as fast as they go
            while not stop.is_set():
                scrape(base)
                urllib.request.urlopen(base, timeout=10).read()
                loads[0] += 1
                stop.wait(0.1)

        def settled() -> int:
            return len(daemon.named("done")) + len(daemon.named("failed"))

        thread = threading.Thread(target=visitor, daemon=True)
        thread.start()
        try:
            for i in range(WARM_UP):
                (tmp_path / "hot" / f"w{i:04}.jpg").write_bytes(jpeg)
            daemon.wait_until(lambda: settled() >= WARM_UP, timeout=300, what="the warm-up files")
            warm = daemon.memory_mb()
            for i in range(FILES - WARM_UP):
                (tmp_path / "hot" / f"f{i:04}.jpg").write_bytes(jpeg if i % GOOD_EVERY == 0 else corrupt)
            daemon.wait_until(lambda: settled() >= FILES, timeout=600, what="every file settled")
            time.sleep(1.0)  # a few more page loads over the full journal
            end = daemon.memory_mb()
        finally:
            stop.set()
            thread.join(15)
        s = scrape(base)
        good = WARM_UP + len(range(0, FILES - WARM_UP, GOOD_EVERY))
        assert s.value("hotmatte_files_processed_total", folder="hot", outcome="done") == good
        assert s.value("hotmatte_queue_files", folder="hot", state="failed") == FILES - good
        assert loads[0] > 10
        print(f"RSS after {WARM_UP} files {warm:.1f} MiB, after {FILES}: {end:.1f} MiB, {loads[0]} visits")
        assert end - warm < MAX_GROWTH_MIB, f"RSS {warm:.0f} MiB → {end:.0f} MiB"
        assert daemon.terminate() == 0
