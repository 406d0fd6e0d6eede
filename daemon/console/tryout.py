"""The Try page: one image, a profile, a control per knob, and a preview that follows the sliders.

Uploading (or picking a hot-folder file) runs the model once (:func:`preview.analyse`); every
later request re-runs only the finishing on the preview copy (:func:`preview.render_preview`).
Each image lives in ``state_dir/try/<id>``; the newest few are kept while the operator plays,
older ones are removed, and all of them when the console starts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import structlog
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from daemon.beneath import fd_path
from daemon.console import knobs, uploads
from daemon.console.context import ConsoleContext
from daemon.console.preview import Analysed, EngineSource, analyse, render_full, render_preview
from daemon.errors import ConfigError, HotmatteError, UnsafePath
from daemon.profiles import BUILTIN_PROFILES, Profile

log = structlog.get_logger("hotmatte")

IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
PREVIEW_FILE = re.compile(r"^preview-[0-9a-f]{16}(\.mask)?\.png$")
#: Images kept for the operator to come back to; older ones (and any older than a day) are removed.
KEEP_IMAGES, KEEP_SECONDS = 8, 24 * 3600
SNIPPET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def all_profiles(ctx: ConsoleContext) -> dict[str, Profile]:
    return {**BUILTIN_PROFILES, **ctx.config().profiles}


def images(ctx: ConsoleContext) -> set[str]:
    return knobs.allowed_backgrounds(all_profiles(ctx))


def default_profile(ctx: ConsoleContext) -> str:
    folders = ctx.config().folders
    return folders[0].profile if folders else "portrait"


def readable(exc: BaseException) -> list[str]:
    """What the operator reads for ``exc``: our errors say what to do; others name their class."""
    if isinstance(exc, ConfigError):
        return exc.problems
    if isinstance(exc, (HotmatteError, uploads.UploadRefused)):
        return [str(exc)]
    return [f"unexpected {type(exc).__name__}: {exc}"]


def error_response(templates: Jinja2Templates, request: Request, exc: BaseException, status: int) -> Response:
    """The readable error fragment. HTMX swaps only 2xx answers in, so its requests get 200 (the
    operator must read why); any other client gets the real status."""
    code = 200 if request.headers.get("HX-Request") == "true" else status
    return templates.TemplateResponse(
        request, "try_error.html", {"problems": readable(exc)}, status_code=code
    )


def routes(ctx: ConsoleContext, templates: Jinja2Templates) -> list[BaseRoute]:
    """The Try page's routes (added to the app by :func:`daemon.console.app.build_app`)."""
    root = ctx.state_dir / "try"
    uploads.clear_scratch(ctx.state_dir, "try")  # leftovers of a previous run
    engines = EngineSource()

    def render(request: Request, name: str, values: Mapping[str, object], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, dict(values), status_code=status)

    def error(request: Request, exc: BaseException, status: int = 400) -> Response:
        return error_response(templates, request, exc, status)

    def image_folder(request: Request) -> Path:
        image_id = request.path_params["image"]
        folder = root / image_id
        if not IMAGE_ID.match(image_id) or not folder.is_dir():
            raise UnsafePath("that image is no longer here: upload it again")
        os.utime(folder)  # in use: the pruning keeps the newest
        return folder

    async def page(request: Request) -> Response:
        config = ctx.config()
        folders = [f.name for f in config.folders]
        chosen = request.query_params.get("folder", folders[0] if folders else "")
        return render(
            request,
            "try.html",
            {"folders": folders, "folder": chosen, "files": uploads.list_folder(config, chosen)},
        )

    async def workspace(request: Request, image: Analysed, folder: str | None = None) -> Response:
        profiles = all_profiles(ctx)
        # A hot-folder file opens with that folder's profile: what the daemon would do to it.
        own = [f.profile for f in ctx.config().folders if f.name == folder]
        chosen = own[0] if own and own[0] in profiles else default_profile(ctx)
        return render(
            request,
            "try_workspace.html",
            {
                "image_id": image.folder.name,
                "image": image,
                "profiles": list(profiles),
                "profile": chosen,
                "controls": knobs.controls(profiles[chosen]),
                "backgrounds": knobs.background_choices(),
            },
        )

    def start(meta: Mapping[str, str]) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        uploads.prune_older(root, KEEP_IMAGES - 1, KEEP_SECONDS)
        folder = root / secrets.token_hex(8)
        folder.mkdir()
        (folder / "origin.json").write_text(json.dumps(dict(meta)))
        return folder

    async def upload(request: Request) -> Response:
        config = ctx.config()
        folder = start({"kind": "upload"})
        try:
            received = await uploads.receive(request, folder / "upload", uploads.upload_limit(config), 1)
            if not received.files:
                raise uploads.UploadRefused("choose an image to upload")
            name, path = received.files[0]
            engine = await run_in_threadpool(engines.get, ctx.engine(), config)
            image = await run_in_threadpool(analyse, path, name, folder, engine, config)
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            status = exc.status if isinstance(exc, uploads.UploadRefused) else 400
            return error(request, exc, status)
        return await workspace(request, image)

    async def pick(request: Request) -> Response:
        config = ctx.config()
        form = await request.form()
        folder_name, relative = str(form.get("folder", "")), str(form.get("path", ""))
        folder = start({"kind": "folder", "folder": folder_name, "path": relative})
        try:
            fd, clean = uploads.resolve_in_folder(config, folder_name, relative)
            try:
                engine = await run_in_threadpool(engines.get, ctx.engine(), config)
                image = await run_in_threadpool(
                    analyse, fd_path(fd), Path(clean).name, folder, engine, config
                )
            finally:
                os.close(fd)
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return error(request, exc, 403 if isinstance(exc, UnsafePath) else 400)
        return await workspace(request, image, folder_name)

    async def knob_panel(request: Request) -> Response:
        profiles = all_profiles(ctx)
        name = request.query_params.get("profile", "")
        if name not in profiles:
            return error(request, ConfigError([f"unknown profile {name!r}"]))
        return render(
            request,
            "try_knobs.html",
            {
                "image_id": request.path_params["image"],
                "controls": knobs.controls(profiles[name]),
                "backgrounds": knobs.background_choices(),
            },
        )

    # Latest wins: one finish per image at a time, and a request overtaken while it waited is
    # dropped (204: HTMX swaps nothing), so a burst of slider moves costs one finish, not a queue.
    turns: dict[str, asyncio.Lock] = {}
    latest: dict[str, int] = {}
    counter = itertools.count()

    async def preview(request: Request) -> Response:
        try:
            folder = image_folder(request)
            form = {k: str(v) for k, v in (await request.form()).multi_items()}
            profile = knobs.profile_from_form(form, images(ctx))
            ticket = latest[folder.name] = next(counter)
            async with turns.setdefault(folder.name, asyncio.Lock()):
                if latest[folder.name] != ticket:
                    return Response(status_code=204)
                image = await run_in_threadpool(Analysed.load, folder)
                engine = await run_in_threadpool(engines.get, ctx.engine(), ctx.config())
                started = time.perf_counter()
                out, mask = await run_in_threadpool(render_preview, image, profile, engine.device)
                seconds = time.perf_counter() - started
        except Exception as exc:
            return error(request, exc, 200)  # shown in place of the preview, the sliders stay usable
        base = f"/try/{folder.name}/file/"
        return render(
            request,
            "try_preview.html",
            {"src": base + out.name, "mask": base + mask.name, "seconds": seconds, "profile": profile},
        )

    async def preview_file(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            folder = image_folder(request)
        except UnsafePath as exc:
            return Response(str(exc), 404)
        if not PREVIEW_FILE.match(name) or not (folder / name).is_file():
            return Response("no such preview", 404)
        return FileResponse(folder / name, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def snippet(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).multi_items()}
        name = form.get("snippet_name", "").strip()
        base = form.get("profile", "raw")
        text, problems = "", []
        try:
            if not SNIPPET_NAME.match(name):
                raise ConfigError(["name: letters, digits and _ only (1-64 characters)"])
            text = knobs.snippet(name, knobs.profile_from_form(form, images(ctx), name), base)
            problems = knobs.validate_snippet(text, Path.cwd())
        except ConfigError as exc:
            problems = exc.problems
        replaces = name in ctx.config().profiles
        return render(request, "try_snippet.html", {"text": text, "problems": problems, "replaces": replaces})

    async def result(request: Request) -> Response:
        config = ctx.config()
        try:
            folder = image_folder(request)
            form = {k: str(v) for k, v in (await request.form()).multi_items()}
            profile = knobs.profile_from_form(form, images(ctx), form.get("profile", "try"))
            image = await run_in_threadpool(Analysed.load, folder)
            origin = json.loads((folder / "origin.json").read_text())
            engine = await run_in_threadpool(engines.get, ctx.engine(), config)
            if origin["kind"] == "upload":
                source = next((folder / "upload").iterdir())
                done = await run_in_threadpool(render_full, source, image, profile, engine, config)
            else:  # a hot-folder file: opened again through the same checks as the pick
                fd, _ = uploads.resolve_in_folder(config, origin["folder"], origin["path"])
                try:
                    done = await run_in_threadpool(render_full, fd_path(fd), image, profile, engine, config)
                finally:
                    os.close(fd)
        except Exception as exc:
            return error(request, exc, 200)
        names = [done.output.name] + ([done.mask.name] if done.mask else [])
        return render(request, "try_result.html", {"image_id": folder.name, "names": names, "result": done})

    async def download(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            folder = image_folder(request)
        except UnsafePath as exc:
            return Response(str(exc), 404)
        path = folder / "result" / name
        if "/" in name or name in ("", ".", "..") or not path.is_file():
            return Response("no such result", 404)
        # Removed once sent: a full-resolution result is large, and the operator has it now.
        return FileResponse(path, filename=name, background=BackgroundTask(path.unlink, missing_ok=True))

    return [
        Route("/try", page, name="try"),
        Route("/try/upload", upload, methods=["POST"]),
        Route("/try/pick", pick, methods=["POST"]),
        Route("/try/{image}/knobs", knob_panel),
        Route("/try/{image}/preview", preview, methods=["POST"]),
        Route("/try/{image}/file/{name}", preview_file),
        Route("/try/{image}/snippet", snippet, methods=["POST"]),
        Route("/try/{image}/result", result, methods=["POST"]),
        Route("/try/{image}/download/{name}", download),
    ]
