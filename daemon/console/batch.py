"""The Batch page: up to 50 uploaded files with one profile, a progress bar, a zip of the results.

A batch is a folder ``state_dir/batch/<id>`` (``in/`` the uploads, ``out/`` the results) and a
thread that runs each file through what the daemon runs (header check, model, the finish path).
Whatever one file raises becomes a readable ``<name>.error.txt`` in the zip; nothing a file does
ends the batch. The folder is removed once its zip has been sent, after a day if it never is,
and at console start.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from daemon.config import Config
from daemon.console import uploads
from daemon.console.context import ConsoleContext
from daemon.console.preview import SUFFIX_BY_FORMAT, EngineSource, model_pass, open_checked
from daemon.console.tryout import all_profiles, default_profile, error_response, readable
from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.matting.engine import MattingEngine
from daemon.pipeline.batch import describe_error
from daemon.profiles import Profile

log = structlog.get_logger("hotmatte")

MAX_FILES = 50
BATCH_ID = re.compile(r"^[0-9a-f]{16}$")
KEEP_SECONDS = 24 * 3600


@dataclass
class BatchJob:
    """One batch's progress, read by the progress fragment while its thread works."""

    folder: Path
    files: list[tuple[str, Path]]
    profile: Profile
    done: int = 0
    #: "name: why" per failed file (the zip holds the full record).
    failed: list[str] = field(default_factory=list)
    finished: bool = False
    zip_path: Path | None = None

    @property
    def total(self) -> int:
        return len(self.files)

    def run(self, engine: MattingEngine, config: Config) -> None:
        out = self.folder / "out"
        out.mkdir(parents=True, exist_ok=True)
        taken: set[str] = set()
        for label, path in self.files:
            stem = _unique(Path(label).stem or "file", taken)
            try:
                _one(
                    path,
                    label,
                    out / f"{stem}{SUFFIX_BY_FORMAT[self.profile.output_format]}",
                    self.profile,
                    engine,
                    config,
                )
            except Exception as exc:  # one file's failure is that file's record, never the batch's end
                self.failed.append(f"{label}: {readable(exc)[0]}")
                (out / f"{stem}.error.txt").write_text(_record(label, exc), encoding="utf-8")
            finally:
                path.unlink(missing_ok=True)  # the upload is used: gone
                self.done += 1
        self.zip_path = _zip(out, self.folder / "results.zip")
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(self.folder / "in", ignore_errors=True)
        self.finished = True


def _unique(stem: str, taken: set[str]) -> str:
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate.lower())
    return candidate


def _one(
    source: Path, label: str, target: Path, profile: Profile, engine: MattingEngine, config: Config
) -> None:
    """What the pipeline's stages do to one file: header check before decoding, model, finish."""
    reader = open_checked(source, label, config)
    try:
        proxy, alpha = model_pass(reader, engine)
        cut_out(
            reader, alpha, Destination.at(target), profile, device=engine.device, proxy=proxy, engine=engine
        )
    finally:
        reader.close()


def _record(label: str, exc: BaseException) -> str:
    return (
        f"file: {label}\n"
        f"result: failed, nothing was written for it\n"
        f"error: {describe_error(exc)}\n"
        f"when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n"
    )


def _zip(out: Path, target: Path) -> Path:
    # Images are already compressed: stored, not deflated (deflating a PNG costs time for ~0 %).
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(out.iterdir()):
            method = zipfile.ZIP_DEFLATED if path.suffix == ".txt" else zipfile.ZIP_STORED
            archive.write(path, path.name, compress_type=method)
    return target


def routes(ctx: ConsoleContext, templates: Jinja2Templates) -> list[BaseRoute]:
    """The Batch page's routes (added to the app by :func:`daemon.console.app.build_app`)."""
    root = ctx.state_dir / "batch"
    uploads.clear_scratch(ctx.state_dir, "batch")  # leftovers of a previous run
    jobs: dict[str, BatchJob] = {}
    engines = EngineSource()
    lock = threading.Lock()
    # One batch at a time: a second one waits (its bar stays at 0) instead of halving the first's
    # share of the CPU, and the hot folders' own work keeps the rest.
    running = threading.Lock()

    def render(request: Request, name: str, values: Mapping[str, object], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, dict(values), status_code=status)

    async def page(request: Request) -> Response:
        profiles = list(all_profiles(ctx))
        return render(
            request,
            "batch.html",
            {"profiles": profiles, "profile": default_profile(ctx), "max_files": MAX_FILES},
        )

    def work(job: BatchJob) -> None:
        try:
            with running:
                job.run(engines.get(ctx.engine(), ctx.config()), ctx.config())
        except Exception as exc:  # no engine, disk full for the zip: shown on the page, never raised
            job.failed.append(f"the batch stopped: {readable(exc)[0]}")
            job.finished = True
            log.error("console_batch_failed", error=f"{type(exc).__name__}: {exc}")

    async def start(request: Request) -> Response:
        config = ctx.config()
        root.mkdir(parents=True, exist_ok=True)
        with lock:
            for key in [k for k, j in jobs.items() if j.finished and not j.folder.exists()]:
                del jobs[key]
        uploads.prune_older(root, 1000, KEEP_SECONDS)
        batch_id = secrets.token_hex(8)
        folder = root / batch_id
        try:
            received = await uploads.receive(request, folder / "in", uploads.upload_limit(config), MAX_FILES)
            if not received.files:
                raise uploads.UploadRefused("choose at least one file")
            name = received.fields.get("profile", "")
            profiles = all_profiles(ctx)
            if name not in profiles:
                raise uploads.UploadRefused(f"unknown profile {name!r}")
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            status = exc.status if isinstance(exc, uploads.UploadRefused) else 400
            return error_response(templates, request, exc, status)
        job = BatchJob(folder, received.files, profiles[name])
        with lock:
            jobs[batch_id] = job
        threading.Thread(target=work, args=(job,), name=f"console-batch-{batch_id}", daemon=True).start()
        return render(request, "batch_progress.html", {"id": batch_id, "job": job})

    async def progress(request: Request) -> Response:
        batch_id = request.path_params["batch"]
        job = jobs.get(batch_id)
        if job is None:
            return Response("no such batch (finished batches are removed once downloaded)", 404)
        return render(request, "batch_progress.html", {"id": batch_id, "job": job})

    async def download(request: Request) -> Response:
        batch_id = request.path_params["batch"]
        job = jobs.get(batch_id) if BATCH_ID.match(batch_id) else None
        if job is None or job.zip_path is None or not job.zip_path.is_file():
            return Response("no such batch result (each zip is removed once downloaded)", 404)
        with lock:
            jobs.pop(batch_id, None)
        # Removed once sent (the page says so): uploads and results are not kept.
        cleanup = BackgroundTask(shutil.rmtree, job.folder, ignore_errors=True)
        return FileResponse(job.zip_path, filename=f"hotmatte-batch-{batch_id}.zip", background=cleanup)

    return [
        Route("/batch", page, name="batch"),
        Route("/batch", start, methods=["POST"]),
        Route("/batch/{batch}/progress", progress),
        Route("/batch/{batch}/results.zip", download),
    ]
