"""The staged pipeline: decode threads → one model thread → finish threads, over bounded queues.

Each stage runs concurrently, so the model is fed while earlier files are still
being written and later ones decoded. Bounded queues keep memory flat however
large the backlog: :meth:`Pipeline.submit` blocks while they are full.

Every submitted job ends in exactly one :class:`Outcome`, success or error.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import structlog

from daemon.beneath import fd_path, open_regular_file
from daemon.config import Config
from daemon.errors import DeviceOutOfMemory
from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.finish.thumbs import shrink, write_thumbs
from daemon.io._types import ImageReader
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine, prepare
from daemon.pipeline.heap import give_back_free_memory
from daemon.pipeline.stage_stats import StageClock, StageReport, save_report
from daemon.pipeline.threads import cpu_count, model_threads_for, single_threaded_opencv, use_cpu_threads
from daemon.profiles import Profile, get_profile

log = structlog.get_logger("hotmatte")

#: Bumped whenever the same input would give a different output; part of the journal fingerprint.
#: 2: the model's input is built from a smaller proxy (see :func:`proxy_side`).
#: 3: guided refinement only in the model's uncertain band; crops never read outside their box.
#: 4: edge detail from a second model pass on crops along the edge (``detail: crops``).
#: 5: the crops' background gate counts firing samples instead of averaging them (busy backdrops).
PIPELINE_VERSION = "5"
#: The proxy's longer side is capped at this many model sizes, whatever the aspect ratio.
MAX_PROXY_FACTOR = 4
#: Set by the benchmark: `hotmatte process` writes its stage report (JSON) here when it stops.
STAGE_REPORT_ENV = "HOTMATTE_STAGE_REPORT"


def proxy_side(width: int, height: int, size: int) -> int:
    """The longest proxy side that still gives the model ``size`` rows and columns of real detail.

    The model squashes the image to ``size``×``size``, so the proxy only needs its *shorter*
    side to reach ``size`` (1366 for a 4:3 photo). Asking for more makes a JPEG decode at a
    lower DCT reduction for nothing: twice the size cost a full 12 MP decode (194 ms CPU)
    where this costs a half-scale one (52 ms), for the same alpha.
    """
    longer, shorter = max(width, height), max(1, min(width, height))
    return min(MAX_PROXY_FACTOR * size, max(size, math.ceil(size * longer / shorter)))


@dataclass(frozen=True)
class Job:
    source: Path
    #: Where the result goes: a path below a trusted root (daemon.finish.outputs.Destination).
    destination: Destination
    profile: str = "raw"
    key: Hashable = None
    #: When set, a result whose confidence is below ``review_below`` goes to ``review_destination``.
    review_below: float | None = None
    review_destination: Destination | None = None
    #: The trusted folder ``source`` lies in (a hot folder, a folder given to ``hotmatte process``):
    #: nothing below it is followed if it is a link. None: ``source``'s own folder.
    source_root: Path | None = None
    #: Where the console's before/after thumbnails go (directory / key, daemon.finish.thumbs); None: none.
    thumbs: Path | None = None


def open_source(job: Job) -> int:
    """A read-only descriptor of the job's original, opened once, never through a link.

    Every component below :attr:`Job.source_root` is opened with ``O_NOFOLLOW`` and the result
    must be a regular file (a FIFO is opened without blocking, then refused), so a file swapped
    for a link after the watcher found it complete cannot make us read the link's target: the
    decode reads this descriptor, nothing else. Raises :class:`~daemon.errors.SymlinkNotFollowed`,
    :class:`~daemon.errors.NotARegularFile` or ``OSError``.
    """
    root = job.source_root if job.source_root is not None else job.source.parent
    return open_regular_file(root, job.source.relative_to(root).as_posix())


@dataclass(frozen=True)
class Outcome:
    job: Job
    output: Path | None
    error: BaseException | None
    timings: dict[str, float]
    #: The cut's confidence (daemon/finish/confidence.py); None when no cut was made.
    confidence: float | None = None
    #: True when ``output`` went to the review destination (confidence below ``review_below``).
    review: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Work:
    job: Job
    timings: dict[str, float] = field(default_factory=dict)
    reader: ImageReader | None = None
    #: The original's descriptor (see :func:`open_source`); the reader reads it through /proc.
    source_fd: int | None = None
    prepared: np.ndarray | None = None
    #: The decoded proxy, kept for profiles whose finishing needs a working copy (saves a decode).
    proxy: np.ndarray | None = None
    alpha: np.ndarray | None = None
    #: The proxy shrunk to a thumbnail (only when the job asks for thumbnails).
    thumb: np.ndarray | None = None


_STOP = object()


class Pipeline:
    def __init__(
        self,
        engine: MattingEngine,
        on_outcome: Callable[[Outcome], None],
        *,
        decode_workers: int = 1,
        finish_workers: int = 1,
        queue_size: int = 8,
        batch_size: int = 1,
        max_megapixels: float = 250.0,
        psd_layer_budget_megapixels: float = 4.0,
        profiles: Mapping[str, Profile] | None = None,
        model_threads: int | None = None,
    ) -> None:
        self.engine = engine
        #: torch intra-op threads for the model's calls (None: leave torch's setting alone). The
        #: engine applies them to every call, so the crop pass, which the finish thread runs, gets
        #: the model's team and not the finish's single thread.
        self.model_threads = model_threads
        if model_threads is not None:
            engine.cpu_threads = model_threads
        self.clock = StageClock(
            {"decode": decode_workers, "model": 1, "detail": finish_workers, "finish": finish_workers}
        )
        self.profiles = dict(profiles or {})
        self.on_outcome = on_outcome
        self.batch_size = batch_size
        self.max_megapixels = max_megapixels
        self.psd_layer_budget_megapixels = psd_layer_budget_megapixels
        self._decode_q: queue.Queue[object] = queue.Queue(queue_size)
        self._model_q: queue.Queue[object] = queue.Queue(queue_size)
        self._finish_q: queue.Queue[object] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._accepting = False
        self._decoders = [self._thread(self._decode_loop, f"decode-{i}") for i in range(decode_workers)]
        self._decoders_running = decode_workers
        self._model = [self._thread(self._model_loop, "model")]
        self._finishers = [self._thread(self._finish_loop, f"finish-{i}") for i in range(finish_workers)]

    @staticmethod
    def _thread(target: Callable[[], None], name: str) -> threading.Thread:
        return threading.Thread(target=target, name=f"hotmatte-{name}", daemon=True)

    # -- public API -----------------------------------------------------------------

    def start(self) -> None:
        self._accepting = True
        self.clock.restart()
        for thread in self._decoders + self._model + self._finishers:
            thread.start()

    def submit(self, job: Job, timeout: float | None = None) -> bool:
        """Queue ``job``; block while the pipeline is full. ``False`` if ``timeout`` passed first."""
        if not self._accepting:
            raise RuntimeError("the pipeline is not accepting jobs")
        with self._lock:
            self._in_flight += 1
        try:
            self._decode_q.put(_Work(job), timeout=timeout)
        except queue.Full:
            self._finished_one()
            return False
        return True

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def stage_report(self) -> StageReport:
        """Per-stage timings so far (files, mean seconds, utilisation, queue depths)."""
        queued = {
            "decode": self._decode_q.qsize(),
            "model": self._model_q.qsize(),
            "finish": self._finish_q.qsize(),
        }
        return self.clock.report(queued)

    def healthy(self) -> bool:
        return self._accepting and all(t.is_alive() for t in self._decoders + self._model + self._finishers)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has its outcome."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def stop(self, drain_timeout: float) -> bool:
        """Stop accepting, let in-flight jobs finish for up to ``drain_timeout`` s; ``True`` if all did."""
        self._accepting = False
        drained = self.wait_idle(drain_timeout)
        for _ in self._decoders:
            self._put_stop(self._decode_q)
        if drained:
            # Joined so no stage thread (and no torch worker pool) is alive when the interpreter exits.
            for thread in self._decoders + self._model + self._finishers:
                thread.join(timeout=10.0)
        self._save_report_if_asked()
        return drained

    def _save_report_if_asked(self) -> None:
        target = os.environ.get(STAGE_REPORT_ENV)
        if target:
            with contextlib.suppress(OSError):  # a benchmark aid: never a reason to fail a run
                save_report(self.stage_report(), Path(target))

    # -- stages ---------------------------------------------------------------------

    @staticmethod
    def _put_stop(q: queue.Queue[object]) -> None:
        # Stages are daemon threads: after a timed-out drain a full queue just dies with the process.
        with contextlib.suppress(queue.Full):
            q.put(_STOP, timeout=1.0)

    def _finished_one(self) -> None:
        with self._idle:
            self._in_flight -= 1
            idle = self._in_flight == 0
            self._idle.notify_all()
        if idle:
            # The buffers kept for the next file (daemon.pipeline.heap) go back to the system:
            # an idle daemon does not keep a shoot's high-water mark.
            give_back_free_memory()

    def _deliver(
        self,
        work: _Work,
        output: Path | None,
        error: BaseException | None,
        confidence: float | None = None,
        review: bool = False,
    ) -> None:
        try:
            # Closing cannot fail a finished job, nor keep it from its one outcome.
            with contextlib.suppress(OSError):
                if work.reader is not None:
                    work.reader.close()
                if work.source_fd is not None:
                    os.close(work.source_fd)
            work.source_fd = None
            self.on_outcome(Outcome(work.job, output, error, dict(work.timings), confidence, review))
        finally:
            self._finished_one()

    def _decode_loop(self) -> None:
        size = self.engine.size
        while (item := self._decode_q.get()) is not _STOP:
            assert isinstance(item, _Work)
            started = time.perf_counter()
            try:
                profile = get_profile(item.job.profile, self.profiles)
                item.source_fd = open_source(item.job)
                item.reader = open_image(
                    fd_path(item.source_fd),
                    max_megapixels=self.max_megapixels,
                    psd_layer_budget_megapixels=self.psd_layer_budget_megapixels,
                    name=item.job.source.name,
                )
                side = proxy_side(*item.reader.info.oriented_size, size)
                proxy = item.reader.proxy(side)
                item.prepared = prepare(proxy, size)
                item.proxy = None if profile.is_raw else proxy
                if item.job.thumbs is not None:  # from the proxy in hand: the original is never re-read
                    item.thumb = shrink(proxy)
            # Stage boundary: whatever one file raises becomes that file's outcome, never a dead thread.
            except Exception as exc:
                self._deliver(item, None, exc)
                continue
            item.timings["decode"] = elapsed = time.perf_counter() - started
            self.clock.record("decode", elapsed)
            self._model_q.put(item)
        with self._lock:
            self._decoders_running -= 1
            last = self._decoders_running == 0
        if last:  # the model thread stops only once no decoder can feed it
            self._put_stop(self._model_q)

    def _next_batch(self, first: _Work) -> tuple[list[_Work], bool]:
        batch, stopping = [first], False
        while len(batch) < self.batch_size:
            try:
                item = self._model_q.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stopping = True
                break
            assert isinstance(item, _Work)
            batch.append(item)
        return batch, stopping

    def _model_loop(self) -> None:
        while (item := self._model_q.get()) is not _STOP:
            assert isinstance(item, _Work)
            batch, stopping = self._next_batch(item)
            self._infer(batch)
            if stopping:
                break
        for _ in self._finishers:
            self._put_stop(self._finish_q)

    def _infer(self, batch: list[_Work]) -> None:
        started = time.perf_counter()
        try:
            alphas = self.engine.predict([w.prepared for w in batch if w.prepared is not None])
        except DeviceOutOfMemory as exc:
            if len(batch) > 1:
                # Retry the same files one at a time before giving up on any of them.
                for work in batch:
                    self._infer([work])
                return
            self._deliver(batch[0], None, exc)
            return
        except Exception as exc:
            for work in batch:
                self._deliver(work, None, exc)
            return
        elapsed = time.perf_counter() - started
        self.clock.record("model", elapsed, len(batch))
        per_item = elapsed / len(batch)
        for work, alpha in zip(batch, alphas, strict=True):
            work.alpha, work.prepared = alpha, None
            work.timings["model"] = per_item
            self._finish_q.put(work)

    def _finish_loop(self) -> None:
        if self.model_threads is not None:
            # On the CPU, the finish's own torch operations (refinement, decontamination) run on
            # this thread alone; the crop pass's model calls get the model's team from the engine.
            # With torch's default team each small operation also woke a thread per core, which
            # spun beside the model's, and on a 16-core box each finish worker would start a team
            # of 16. On 12 × 12 MP JPEGs (2 cores, a noisy machine) images/s and CPU s per image
            # stayed within the run-to-run spread (0.71-0.96 images/s, 1.5-2.2 CPU s).
            use_cpu_threads(1)
        while (item := self._finish_q.get()) is not _STOP:
            assert isinstance(item, _Work) and item.reader is not None and item.alpha is not None
            started = time.perf_counter()
            job = item.job
            try:
                result = cut_out(
                    item.reader,
                    item.alpha,
                    job.destination,
                    get_profile(job.profile, self.profiles),
                    review_below=job.review_below,
                    review_destination=job.review_destination,
                    device=self.engine.device,
                    proxy=item.proxy,
                    engine=self.engine,
                )
            except Exception as exc:
                self._deliver(item, None, exc)
                continue
            elapsed = time.perf_counter() - started
            if result.detail_seconds is not None:  # the crop pass, run here, is its own stage
                item.timings["detail"] = result.detail_seconds
                self.clock.record("detail", result.detail_seconds)
                elapsed -= result.detail_seconds
            item.timings["finish"] = elapsed
            self.clock.record("finish", elapsed)
            self._write_thumbs(item, result.confidence)
            self._deliver(item, result.output, None, result.confidence, result.review)

    @staticmethod
    def _write_thumbs(item: _Work, confidence: float) -> None:
        prefix = item.job.thumbs
        if prefix is None or item.thumb is None or item.alpha is None:
            return
        try:
            write_thumbs(prefix, item.thumb, item.alpha, item.timings, confidence)
        # A thumbnail is only for the console's pages: it never costs the file its outcome.
        except Exception as exc:
            log.warning("thumbs_failed", source=str(item.job.source), error=str(exc))
        item.thumb = None


def resolve_workers(config: Config, engine: MattingEngine | None = None) -> tuple[int, int, int]:
    """(decode, finish, batch) with ``auto`` resolved for this machine (and ``engine``'s device)."""
    cores = cpu_count()
    decode = config.workers.decode if config.workers.decode != "auto" else max(1, min(4, cores // 2))
    finish = config.workers.finish if config.workers.finish != "auto" else max(1, min(4, cores // 2))
    if config.workers.batch_size != "auto":
        batch = config.workers.batch_size
    else:
        batch = engine.auto_batch_size() if engine is not None else 1
    return decode, finish, batch


def build_pipeline(config: Config, on_outcome: Callable[[Outcome], None]) -> Pipeline:
    """Load the engine from ``config`` (raises :class:`~daemon.errors.WeightsError`) and wire the stages."""
    engine = load_engine(config.weights, config.device, config.model_size, config.model_precision)
    decode, finish, batch = resolve_workers(config, engine)
    if engine.device.type == "cpu":
        single_threaded_opencv()
    return Pipeline(
        engine,
        on_outcome,
        decode_workers=decode,
        finish_workers=finish,
        queue_size=config.workers.queue_size,
        batch_size=batch,
        max_megapixels=config.max_megapixels,
        psd_layer_budget_megapixels=config.psd_layer_budget_megapixels,
        profiles=config.profiles,
        model_threads=model_threads_for(engine.device),
    )
