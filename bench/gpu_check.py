"""One prepared check for a GPU machine: ``make gpu-check`` (or ``python bench/gpu_check.py``).

Made to finish within 8 minutes on a machine that reaches no package registry and is given at
most 64 MiB beside the checkout. It installs nothing. In order, each part skipped (and saying
why) once the time budget is spent or what it needs is missing:

1. the CUDA tests (``pytest -m cuda``; they skip where torch sees no CUDA device);
2. the model alone at 1024², batches 1, 2, 4, 8, 16, fp16 + channels_last: eager, then CUDA
   graphs and ``torch.compile`` (each kept only where it beats eager; the table says which won);
3. end to end (``Pipeline`` on the benchmark folder, profile ``raw``, PNG out) as a fraction of
   the best model-only rate;
4. the edge-detail crop pass (``MattingEngine.predict_crops``) on 32 crops.

Weights: the fp16 file (88 MB) does not fit one 64 MiB transfer. ``--weights-parts A B`` joins
two parts (``split -n 2``) and checks the joined file's sha256 against ``--weights-sha256`` or
``--manifest``; without them the model has RANDOM weights of the same architecture (speed does
not depend on the values) and every table says so. Either way they go into a folder shaped like
``hotmatte weights fetch``'s, which the CUDA tests load too (``$HOTMATTE_WEIGHTS``).

Each part that fails, or needs a module this machine lacks, is reported as ``skipped: <reason>``
and the rest still run; the JSON report is always written. Wheels for the daemon's modules the
GPU machine lacks: ``bench/gpu_wheels.sh`` (bench/README.md). Never run here without a GPU for
numbers: ``--device cpu --quick`` is the dry run that proves the script works.

Results: a table on stdout and ``--out`` (JSON, default bench/results/gpu-check.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

if TYPE_CHECKING:
    from daemon.matting.engine import MattingEngine

BATCHES = (1, 2, 4, 8, 16)
CUDA_TESTS = "tests/matting/test_cuda.py"
BUDGET_SECONDS = 7 * 60  # leaves a minute of the 8 for start-up and the report


class Clock:
    def __init__(self, budget: float) -> None:
        self.started = time.monotonic()
        self.budget = budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)


def prepare_weights(parts: list[Path] | None, expected_sha256: str | None) -> tuple[Path, str]:
    """A weights folder shaped like ``hotmatte weights fetch``'s, and where its values came from.

    Joined parts (sha256 checked where one is known), or random values of the same architecture:
    the tests in their own process find it through ``$HOTMATTE_WEIGHTS``.
    """
    from tests.matting._random_weights import joined_weights_dir, random_weights_dir

    folder = Path(tempfile.mkdtemp(prefix="hotmatte-weights-"))
    if parts:
        joined_weights_dir(parts, folder, expected_sha256)
        return folder, f"real weights joined from {len(parts)} parts ({folder})"
    random_weights_dir(folder)
    return folder, "RANDOM weights of the same architecture (timings only; alphas are meaningless)"


def section(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One part of the check; a missing module or any failure becomes ``skipped: <reason>``."""
    try:
        result = run()
    except Exception as exc:  # the report must still be written: say what stopped this part
        result = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    shown = f"skipped: {result['skipped']}" if "skipped" in result else json.dumps(result, indent=1)
    print(f"{name}: {shown}", flush=True)
    return result


def cuda_tests(device: str, clock: Clock) -> dict[str, Any]:
    import pytest  # noqa: F401  (only to say "skipped: no pytest" here rather than in the child)

    started = time.perf_counter()
    # The CUDA test file alone: collecting the whole suite would import the console, the cluster
    # and the browser tests' packages, which a GPU machine need not have.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/matting/test_cuda.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=max(30.0, min(180.0, clock.left() - 240)),
        check=False,
    )
    tail = (done.stdout + done.stderr).strip().splitlines()
    return {
        "exit_code": done.returncode,
        "summary": tail[-1] if tail else "",
        "skip_reasons": [line for line in tail if line.startswith("SKIPPED")][:5],
        "errors": [line for line in tail if line.startswith(("ERROR", "E   "))][:5],
        "seconds": round(time.perf_counter() - started, 1),
        "device_seen_by_tests": device,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(run: Callable[[], object], batch: int, repeats: int, device: torch.device) -> float:
    run()  # warm-up (cuDNN picks its algorithms, compile happens, graphs are captured)
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    return batch * repeats / (time.perf_counter() - started)


def _call_inference(model: Callable[..., Any], x: torch.Tensor) -> object:
    with torch.inference_mode():
        return model(x)


def _graphed(model: torch.nn.Module, example: torch.Tensor) -> Callable[[], object]:
    """The model replayed from a CUDA graph on a static input (the copy in is part of the time)."""
    static_in = example.clone()
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(2):
            model(static_in)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        static_out = model(static_in)

    def replay() -> object:
        static_in.copy_(example)
        graph.replay()
        return static_out

    return replay


def model_only(
    engine: MattingEngine, size: int, batches: tuple[int, ...], repeats: int, clock: Clock, try_compile: bool
) -> dict[str, Any]:
    device = engine.device
    rng = np.random.default_rng(0)
    table: dict[str, dict[str, float | str]] = {}
    compiled: Callable[..., Any] | None = None
    for batch in batches:
        if clock.left() < 150:
            table[str(batch)] = {"skipped": "time budget"}
            continue
        images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
        row: dict[str, float | str] = {}
        try:
            row["eager"] = round(_rate(functools.partial(engine.predict, images), batch, repeats, device), 2)
            example = engine._to_input(images)
            if device.type == "cuda":
                try:
                    row["cuda_graph"] = round(
                        _rate(_graphed(engine.model, example), batch, repeats, device), 2
                    )
                except Exception as exc:  # a capture that fails says why, and eager stands
                    row["cuda_graph"] = f"failed: {type(exc).__name__}: {exc}"[:200]
            if try_compile and clock.left() > 200:
                try:
                    if compiled is None:
                        compiled = torch.compile(engine.model, mode="max-autotune-no-cudagraphs")

                    run_compiled = functools.partial(_call_inference, compiled, example)

                    t0 = time.perf_counter()
                    run_compiled()
                    _sync(device)
                    row["compile_seconds"] = round(time.perf_counter() - t0, 1)
                    row["compiled"] = round(_rate(run_compiled, batch, repeats, device), 2)
                except Exception as exc:
                    row["compiled"] = f"failed: {type(exc).__name__}: {exc}"[:200]
        except torch.OutOfMemoryError:
            row["eager"] = "out of memory"
        rates = {
            k: v for k, v in row.items() if k in ("eager", "cuda_graph", "compiled") and isinstance(v, float)
        }
        if rates:
            row["kept"] = max(rates, key=lambda k: rates[k])
        table[str(batch)] = row
    best = max(
        (
            float(v)
            for row in table.values()
            for k, v in row.items()
            if k in ("eager", "cuda_graph", "compiled") and isinstance(v, float)
        ),
        default=0.0,
    )
    return {"size": size, "images_per_second": table, "best": round(best, 2)}


def end_to_end(engine: MattingEngine, images: Path, count: int, clock: Clock) -> dict[str, Any]:
    from daemon.config import load_config
    from daemon.pipeline.batch import plan_jobs
    from daemon.pipeline.stages import Outcome, Pipeline, resolve_workers

    config = load_config(None)
    decode, finish, batch = resolve_workers(config, engine)
    outcomes: list[Outcome] = []
    out = Path(tempfile.mkdtemp(prefix="hotmatte-gpu-e2e-"))
    pipeline = Pipeline(
        engine, outcomes.append, decode_workers=decode, finish_workers=finish, batch_size=batch
    )
    plan = plan_jobs([images], out, "raw", "png")
    started = time.perf_counter()
    pipeline.start()
    for job in plan.jobs[:count]:
        pipeline.submit(job)
    pipeline.wait_idle(timeout=max(10.0, clock.left() - 60))
    seconds = time.perf_counter() - started
    pipeline.stop(drain_timeout=5)
    ok = sum(1 for o in outcomes if o.ok)
    errors = [str(o.error)[:200] for o in outcomes if not o.ok][:3]
    return {
        "files": min(count, len(plan.jobs)),
        "done": ok,
        "errors": errors,
        "seconds": round(seconds, 2),
        "images_per_second": round(ok / seconds, 3) if seconds else 0.0,
        "workers": {"decode": decode, "finish": finish, "batch": batch, "cpu_cores": os.cpu_count()},
        "stages": pipeline.stage_report().to_dict(),
    }


def crop_pass(engine: MattingEngine, size: int, crops: int, device: torch.device) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    batch = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(crops)]
    engine.predict_crops(batch[:1])
    _sync(device)
    started = time.perf_counter()
    engine.predict_crops(batch)
    _sync(device)
    seconds = time.perf_counter() - started
    return {
        "crops": crops,
        "auto_batch": engine.auto_batch_size(),
        "seconds": round(seconds, 3),
        "crops_per_second": round(crops / seconds, 2),
    }


def _small_images(folder: Path) -> None:
    """Two 1200×900 JPEGs: enough for the dry run to go through every stage."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for index in range(2):
        pixels = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"small-{index}.jpg", quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="dry run: 256², batches 1-2, 2 images, 2 crops")
    parser.add_argument("--weights-parts", nargs="+", type=Path, help="the fp16 weights in parts, in order")
    parser.add_argument("--manifest", type=Path, default=REPO / "weights" / "manifest.json")
    parser.add_argument("--weights-sha256", help="the joined file's sha256 (else the manifest's, if any)")
    parser.add_argument("--images", type=Path, help="benchmark folder (default: build the 24 × 12 MP set)")
    parser.add_argument("--compile", choices=("yes", "no"), default="yes", help="try torch.compile")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-check.json")
    args = parser.parse_args(argv)
    clock = Clock(BUDGET_SECONDS)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu-check: torch sees no CUDA device; run with --device cpu --quick for a dry run",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    size, batches, repeats = (256, (1, 2), 1) if args.quick else (1024, BATCHES, 10)
    expected = args.weights_sha256
    if expected is None and args.manifest.is_file():
        expected = json.loads(args.manifest.read_text(encoding="utf-8")).get("sha256")
    weights_dir: Path | None = None
    try:
        weights_dir, weights_note = prepare_weights(args.weights_parts, expected)
        os.environ["HOTMATTE_WEIGHTS"] = str(weights_dir)  # the CUDA tests' process loads the same
    except Exception as exc:  # a bad join or a daemon module missing: no model parts, still a report
        weights_note = f"weights skipped: {type(exc).__name__}: {exc}"[:300]
    precision = "fp16" if device.type == "cuda" else "fp32"
    report: dict[str, Any] = {
        "weights": weights_note,
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else "cpu (dry run: not GPU numbers)",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "precision": precision,
        "memory_format": "channels_last",
    }
    print(f"gpu-check on {report['device']}; {weights_note}", flush=True)
    report["cuda_tests"] = section("CUDA tests", lambda: cuda_tests(args.device, clock))
    engine: MattingEngine | None = None
    try:
        from daemon.matting.engine import load_engine

        if weights_dir is None:
            raise RuntimeError(f"no weights ({weights_note})")
        engine = load_engine(weights_dir, device=args.device, size=size, precision=precision)  # type: ignore[arg-type]
    except Exception as exc:  # e.g. cv2 missing: the model parts cannot run, the report still can
        reason = f"no engine: {type(exc).__name__}: {exc}"[:300]
        print(f"model: skipped: {reason}", flush=True)
        for name in ("model_only", "end_to_end", "crop_pass"):
            report[name] = {"skipped": reason}
    if engine is not None:
        ready = engine
        report["model_only"] = section(
            "model only",
            lambda: model_only(
                ready, size, batches, repeats, clock, args.compile == "yes" and not args.quick
            ),
        )
        if clock.left() > 90:
            report["end_to_end"] = section("end to end", lambda: _end_to_end(ready, args, report, clock))
        else:
            report["end_to_end"] = {"skipped": "time budget"}
        if clock.left() > 30:
            crops = 2 if args.quick else 32
            report["crop_pass"] = section("crop pass", lambda: crop_pass(ready, ready.size, crops, device))
        else:
            report["crop_pass"] = {"skipped": "time budget"}
    report["seconds"] = round(BUDGET_SECONDS - clock.left(), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"saved {args.out} ({report['seconds']} s)")
    return 0


def _end_to_end(
    engine: MattingEngine, args: argparse.Namespace, report: dict[str, Any], clock: Clock
) -> dict[str, Any]:
    images: Path | None = args.images
    if images is None:
        images = Path(tempfile.mkdtemp(prefix="hotmatte-gpu-images-")) / "shoot"
        if args.quick:
            _small_images(images)
        else:
            from _dataset import build_dataset

            build_dataset(images)
    if not args.quick:
        engine.size = 1024
    e2e = end_to_end(engine, images, 2 if args.quick else 24, clock)
    best = float(report["model_only"].get("best", 0.0))
    e2e["fraction_of_model_only"] = round(e2e["images_per_second"] / best, 3) if best else None
    return e2e


if __name__ == "__main__":
    sys.exit(main())
