"""The staged pipeline: decode threads → one model thread → finish threads, over bounded queues.

Each stage runs concurrently, so the model is fed while earlier files are still
being written and later ones decoded. Bounded queues keep memory flat however
large the backlog: :meth:`Pipeline.submit` blocks while they are full.

Every submitted job ends in exactly one :class:`Outcome`, success or error.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemon.config import Config
from daemon.cutout import write_cutout
from daemon.errors import DeviceOutOfMemory
from daemon.io._types import ImageReader
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine, prepare
from daemon.profiles import get_profile

#: Bumped whenever the same input would give a different output; part of the journal fingerprint.
PIPELINE_VERSION = "1"


@dataclass(frozen=True)
class Job:
    source: Path
    destination: Path
    profile: str = "raw"
    key: Hashable = None


@dataclass(frozen=True)
class Outcome:
    job: Job
    output: Path | None
    error: BaseException | None
    timings: dict[str, float]

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Work:
    job: Job
    timings: dict[str, float] = field(default_factory=dict)
    reader: ImageReader | None = None
    prepared: np.ndarray | None = None
    alpha: np.ndarray | None = None


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
    ) -> None:
        self.engine = engine
        self.on_outcome = on_outcome
        self.batch_size = batch_size
        self.max_megapixels = max_megapixels
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
        return drained

    # -- stages ---------------------------------------------------------------------

    @staticmethod
    def _put_stop(q: queue.Queue[object]) -> None:
        # Stages are daemon threads: after a timed-out drain a full queue just dies with the process.
        with contextlib.suppress(queue.Full):
            q.put(_STOP, timeout=1.0)

    def _finished_one(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _deliver(self, work: _Work, output: Path | None, error: BaseException | None) -> None:
        if work.reader is not None:
            work.reader.close()
        try:
            self.on_outcome(Outcome(work.job, output, error, dict(work.timings)))
        finally:
            self._finished_one()

    def _decode_loop(self) -> None:
        while (item := self._decode_q.get()) is not _STOP:
            assert isinstance(item, _Work)
            started = time.perf_counter()
            try:
                get_profile(item.job.profile)
                item.reader = open_image(item.job.source, max_megapixels=self.max_megapixels)
                item.prepared = prepare(item.reader.proxy(2 * self.engine.size), self.engine.size)
            # Stage boundary: whatever one file raises becomes that file's outcome, never a dead thread.
            except Exception as exc:
                self._deliver(item, None, exc)
                continue
            item.timings["decode"] = time.perf_counter() - started
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
        per_item = (time.perf_counter() - started) / len(batch)
        for work, alpha in zip(batch, alphas, strict=True):
            work.alpha, work.prepared = alpha, None
            work.timings["model"] = per_item
            self._finish_q.put(work)

    def _finish_loop(self) -> None:
        while (item := self._finish_q.get()) is not _STOP:
            assert isinstance(item, _Work) and item.reader is not None and item.alpha is not None
            started = time.perf_counter()
            try:
                output = write_cutout(item.reader, item.alpha, item.job.destination)
            except Exception as exc:
                self._deliver(item, None, exc)
                continue
            item.timings["finish"] = time.perf_counter() - started
            self._deliver(item, output, None)


def resolve_workers(config: Config) -> tuple[int, int, int]:
    """(decode, finish, batch) with ``auto`` resolved for this machine."""
    cores = os.cpu_count() or 1
    decode = config.workers.decode if config.workers.decode != "auto" else max(1, min(4, cores // 2))
    finish = config.workers.finish if config.workers.finish != "auto" else max(1, min(4, cores // 2))
    batch = config.workers.batch_size if config.workers.batch_size != "auto" else 1
    return decode, finish, batch


def build_pipeline(config: Config, on_outcome: Callable[[Outcome], None]) -> Pipeline:
    """Load the engine from ``config`` (raises :class:`~daemon.errors.WeightsError`) and wire the stages."""
    engine = load_engine(config.weights, config.device, config.model_size)
    decode, finish, batch = resolve_workers(config)
    return Pipeline(
        engine,
        on_outcome,
        decode_workers=decode,
        finish_workers=finish,
        queue_size=config.workers.queue_size,
        batch_size=batch,
        max_megapixels=config.max_megapixels,
    )
