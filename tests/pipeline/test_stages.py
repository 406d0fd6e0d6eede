"""The staged pipeline with the real model: outcomes, per-stage timings, proxy size, CPU sharing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from daemon.config import parse_config
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, cpu_runs_bf16, load_engine
from daemon.pipeline.stage_stats import (
    STAGES,
    StageClock,
    StageReport,
    StageSnapshot,
    load_report,
    report_path_for,
    save_report,
)
from daemon.pipeline.stages import (
    MAX_PROXY_FACTOR,
    STAGE_REPORT_ENV,
    Job,
    Outcome,
    Pipeline,
    build_pipeline,
    proxy_side,
    resolve_workers,
)
from daemon.pipeline.threads import model_threads_for
from daemon.profiles import BUILTIN_PROFILES
from tests.conftest import SMALL_MODEL_SIZE, photo, run_hotmatte, save_jpeg


@pytest.fixture(scope="module")
def engine(weights_dir: Path) -> MattingEngine:
    return load_engine(weights_dir, device="cpu", size=SMALL_MODEL_SIZE, precision="fp32")


def _run(pipeline: Pipeline, jobs: list[Job]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    pipeline.on_outcome = outcomes.append
    pipeline.start()
    for job in jobs:
        pipeline.submit(job)
    assert pipeline.wait_idle(timeout=300)
    assert pipeline.stop(drain_timeout=0)
    return outcomes


def test_proxy_covers_the_model_on_the_shorter_side() -> None:
    assert proxy_side(4000, 3000, 1024) == 1366
    assert proxy_side(3000, 4000, 1024) == 1366
    assert proxy_side(3464, 3464, 1024) == 1024
    assert proxy_side(300, 200, 1024) == 1536  # small images are never enlarged by the reader anyway
    assert proxy_side(40000, 1000, 1024) == MAX_PROXY_FACTOR * 1024  # panoramas are capped


def test_jpeg_proxy_is_half_scale_decode_with_enough_rows(tmp_path: Path) -> None:
    big = np.asarray(Image.fromarray(photo("coffee")).resize((4000, 3000)))
    reader = open_image(save_jpeg(tmp_path / "big.jpg", big), max_megapixels=250)
    try:
        proxy = reader.proxy(proxy_side(*reader.info.oriented_size, 1024))
    finally:
        reader.close()
    assert proxy.shape == (1024, 1366, 3)


def test_every_job_has_one_outcome_and_the_stages_are_timed(engine: MattingEngine, tmp_path: Path) -> None:
    sources = [save_jpeg(tmp_path / "in" / f"{name}.jpg", photo(name)) for name in ("astronaut", "coffee")]
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    jobs = [Job(s, Destination.at(tmp_path / "out" / f"{s.stem}.png")) for s in [*sources, broken]]
    pipeline = Pipeline(engine, lambda _: None, decode_workers=2, finish_workers=1, model_threads=1)
    outcomes = _run(pipeline, jobs)

    assert sorted(o.job.source.name for o in outcomes) == ["astronaut.jpg", "broken.jpg", "coffee.jpg"]
    good = [o for o in outcomes if o.ok]
    assert len(good) == 2 and all(o.output is not None and o.output.is_file() for o in good)
    assert all(set(o.timings) == set(STAGES) and min(o.timings.values()) > 0 for o in good)

    report = pipeline.stage_report()
    assert [s.name for s in report.stages] == list(STAGES)
    assert all(s.files == 2 for s in report.stages)  # the broken file never reached a stage's end
    assert all(0 < s.utilisation <= 1 and s.mean_seconds > 0 for s in report.stages)
    assert report.bottleneck in STAGES
    model = next(s for s in report.stages if s.name == "model")
    assert model.mean_seconds == pytest.approx(np.mean([o.timings["model"] for o in good]), rel=1e-3)


def test_on_the_cpu_the_finish_runs_torch_on_its_own_thread_and_every_model_call_gets_the_models_team(
    engine: MattingEngine, tmp_path: Path
) -> None:
    source = save_jpeg(tmp_path / "in" / "astronaut.jpg", photo("astronaut"))
    seen: list[tuple[bool, int]] = []  # outcomes are delivered from the finish thread
    # Crops of the model's own size, so this small photo gets a crop pass (the finish thread's calls).
    fine = BUILTIN_PROFILES["product"].model_copy(update={"name": "fine", "detail_crop": 256})
    pipeline = Pipeline(
        engine,
        lambda o: seen.append((o.ok, torch.get_num_threads())),
        model_threads=2,
        profiles={"fine": fine},
    )
    calls: list[tuple[str, int]] = []  # (calling thread, torch threads) inside each model call
    hook = engine.model.register_forward_pre_hook(
        lambda *_: calls.append((threading.current_thread().name, torch.get_num_threads()))
    )
    try:
        pipeline.start()
        pipeline.submit(Job(source, Destination.at(tmp_path / "out" / "a.png"), profile="fine"))
        assert pipeline.wait_idle(timeout=300)
        assert pipeline.stop(drain_timeout=0)
    finally:
        hook.remove()
    assert seen == [(True, 1)]
    assert {name for name, _ in calls} == {"hotmatte-model", "hotmatte-finish-0"}
    assert all(threads == 2 for _, threads in calls), calls


def test_batched_model_stage_counts_files_not_calls(engine: MattingEngine, tmp_path: Path) -> None:
    sources = [save_jpeg(tmp_path / f"{i}.jpg", photo("chelsea")) for i in range(3)]
    pipeline = Pipeline(engine, lambda _: None, batch_size=3, queue_size=4)
    outcomes = _run(pipeline, [Job(s, Destination.at(tmp_path / "out" / f"{s.stem}.png")) for s in sources])
    assert all(o.ok for o in outcomes)
    assert pipeline.stage_report().stages[1].files == 3


def test_report_survives_a_save_and_load(tmp_path: Path) -> None:
    clock = StageClock({"decode": 2, "model": 1, "finish": 2})
    clock.record("decode", 0.2)
    clock.record("model", 3.0, files=2)
    clock.record("finish", 0.5)
    report = clock.report({"model": 4})
    model = report.stages[1]
    assert (model.files, model.mean_seconds, model.busy_seconds, model.queued) == (2, 1.5, 3.0, 4)
    path = report_path_for(tmp_path / "journal.sqlite")
    save_report(report, path)
    assert load_report(path) == report
    path.write_text("{ broken")
    assert load_report(path) is None


def test_the_busiest_stage_is_named_the_bottleneck() -> None:
    def stage(name: str, utilisation: float) -> StageSnapshot:
        return StageSnapshot(name, 1, 10, 10 * utilisation, utilisation, utilisation, utilisation, 0)

    report = StageReport(10.0, (stage("decode", 0.1), stage("model", 0.97), stage("finish", 0.6)))
    assert report.bottleneck == "model"
    lines = report.format_lines()
    assert lines[-1] == "bottleneck: model" and "97%" in lines[2]
    assert StageReport(1.0, (StageSnapshot("decode", 1, 0, 0, 0, 0, 0, 3),)).bottleneck is None


def test_process_writes_the_stage_report_when_asked(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "rocket.jpg", photo("rocket"))
    target = tmp_path / "stages.json"
    result = run_hotmatte(
        "process",
        "--model-size",
        SMALL_MODEL_SIZE,
        "-o",
        tmp_path / "out",
        source,
        env={STAGE_REPORT_ENV: str(target)},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(target.read_text())
    assert [s["files"] for s in data["stages"]] == [1, 1, 1]
    assert data["bottleneck"] in STAGES


def test_model_gets_most_cores_on_cpu_and_torch_decides_on_gpu() -> None:
    cpu = torch.device("cpu")
    assert model_threads_for(cpu, cores=1) == 1
    assert model_threads_for(cpu, cores=2) == 2
    assert model_threads_for(cpu, cores=16) == 12
    assert model_threads_for(torch.device("cuda"), cores=16) is None


def test_auto_batch_is_one_on_cpu_and_explicit_values_win(engine: MattingEngine, tmp_path: Path) -> None:
    auto = parse_config("workers: {decode: 3, finish: 2}\n", tmp_path)
    assert resolve_workers(auto, engine) == (3, 2, 1)
    fixed = parse_config("workers: {batch_size: 4}\n", tmp_path)
    assert resolve_workers(fixed, engine)[2] == 4


def test_a_job_asking_for_thumbnails_gets_them_from_the_proxy_and_a_failed_one_gets_none(
    tmp_path: Path, engine: MattingEngine
) -> None:
    from daemon.finish.thumbs import THUMB_SIDE, read_meta, thumb_path

    (tmp_path / "in").mkdir()
    source = save_jpeg(
        tmp_path / "in" / "a.jpg", np.asarray(Image.fromarray(photo("coffee")).resize((800, 600)))
    )
    broken = tmp_path / "in" / "b.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    thumbs = tmp_path / "state" / "thumbs"
    jobs = [
        Job(
            src,
            Destination.at(tmp_path / "out" / f"{src.stem}.png"),
            "raw",
            src.name,
            thumbs=thumbs / src.stem,
        )
        for src in (source, broken)
    ]
    outcomes = {o.job.key: o for o in _run(Pipeline(engine, lambda _: None), jobs)}
    assert outcomes["a.jpg"].ok and not outcomes["b.jpg"].ok
    with Image.open(thumb_path(thumbs, "a", "after")) as after:
        assert after.mode == "RGBA" and after.size == (THUMB_SIDE, 240)
    timings = read_meta(thumbs, "a")["timings"]
    assert isinstance(timings, dict) and set(timings) >= {"decode", "model", "finish"}
    assert not thumb_path(thumbs, "b", "after").exists()


def test_the_configs_precision_is_the_one_the_model_runs(weights_dir: Path, tmp_path: Path) -> None:
    for asked in ("fp32", "bf16") if cpu_runs_bf16() else ("fp32",):
        config = parse_config(f"weights: {weights_dir}\ndevice: cpu\nprecision: {asked}\n", tmp_path)
        pipeline = build_pipeline(config, lambda outcome: None)
        assert pipeline.engine.precision == asked
        conv = next(m for m in pipeline.engine.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[asked]
