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
two parts (``split -n 2``) and checks the joined file's sha256 against ``--manifest``; without
them the model has RANDOM weights of the same architecture (speed does not depend on the values)
and every table says so. Never run here without a GPU for numbers: ``--device cpu --quick`` is
the dry run that proves the script works.

Results: a table on stdout and ``--out`` (JSON, default bench/results/gpu-check.json).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from daemon.matting.engine import MattingEngine, _build  # noqa: E402
from daemon.matting.registry import DEFAULT_MODEL, build_model  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
BUDGET_SECONDS = 7 * 60  # leaves a minute of the 8 for start-up and the report


class Clock:
    def __init__(self, budget: float) -> None:
        self.started = time.monotonic()
        self.budget = budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)


def load_weights(parts: list[Path] | None, manifest: Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict and where it came from: joined parts (sha256 checked) or random values."""
    if parts:
        from safetensors.torch import load_file

        joined = Path(tempfile.mkdtemp(prefix="hotmatte-weights-")) / "isnet-general-use.safetensors"
        digest = hashlib.sha256()
        with open(joined, "wb") as out:
            for part in parts:
                data = part.read_bytes()
                digest.update(data)
                out.write(data)
        if manifest is not None:
            expected = json.loads(manifest.read_text()).get("sha256")
            if expected != digest.hexdigest():
                raise SystemExit(
                    f"joined weights' sha256 {digest.hexdigest()} is not the manifest's {expected}"
                )
        return load_file(joined), f"real weights joined from {len(parts)} parts ({joined})"
    model = build_model(DEFAULT_MODEL)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    return state, "RANDOM weights of the same architecture (timings only; alphas are meaningless)"


def cuda_tests(device: str, clock: Clock) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"],
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
    manifest = args.manifest if args.manifest.is_file() else None
    state, weights_note = load_weights(args.weights_parts, manifest)
    precision = "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    engine = MattingEngine(_build(state, device, precision), device, precision, size)  # type: ignore[arg-type]
    report: dict[str, Any] = {
        "weights": weights_note,
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else "cpu (dry run: not GPU numbers)",
        "torch": torch.__version__,
        "precision": precision,
        "memory_format": "channels_last",
    }
    print(f"gpu-check on {report['device']}; {weights_note}", flush=True)
    report["cuda_tests"] = cuda_tests(args.device, clock)
    print(f"CUDA tests: {report['cuda_tests']['summary']}", flush=True)
    report["model_only"] = model_only(
        engine, size, batches, repeats, clock, args.compile == "yes" and not args.quick
    )
    print(json.dumps(report["model_only"], indent=1), flush=True)
    if clock.left() > 90:
        try:
            images = args.images
            if images is None:
                images = Path(tempfile.mkdtemp(prefix="hotmatte-gpu-images-")) / "shoot"
                if args.quick:
                    _small_images(images)
                else:
                    from _dataset import build_dataset

                    build_dataset(images)
            engine.size = 1024 if not args.quick else size
            e2e = end_to_end(engine, images, 2 if args.quick else 24, clock)
            best = float(report["model_only"]["best"])
            e2e["fraction_of_model_only"] = round(e2e["images_per_second"] / best, 3) if best else None
            report["end_to_end"] = e2e
        except Exception as exc:  # e.g. a daemon dependency missing on this machine
            report["end_to_end"] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
        print(f"end to end: {report['end_to_end']}", flush=True)
    else:
        report["end_to_end"] = {"skipped": "time budget"}
    if clock.left() > 30:
        report["crop_pass"] = crop_pass(engine, engine.size, 2 if args.quick else 32, device)
        print(f"crop pass: {report['crop_pass']}", flush=True)
    report["seconds"] = round(BUDGET_SECONDS - clock.left(), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"saved {args.out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
