"""The decode stage opens each original once, never through a link, and decodes that descriptor only."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.beneath import fd_path
from daemon.errors import CorruptInput, NotARegularFile, SymlinkNotFollowed
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine
from daemon.pipeline.stages import Job, Outcome, Pipeline, open_source
from tests.conftest import SMALL_MODEL_SIZE, photo, save_jpeg


@pytest.fixture(scope="module")
def engine(weights_dir: Path) -> MattingEngine:
    return load_engine(weights_dir, device="cpu", size=SMALL_MODEL_SIZE, precision="fp32")


def _swap_for_link(path: Path, target: Path) -> None:
    """Replace ``path`` by a link to ``target`` in one rename, as an attacker racing us would."""
    staged = path.with_name(path.name + ".swap")
    staged.symlink_to(target)
    os.replace(staged, path)


def _png16(path: Path, rgb: np.ndarray) -> Path:
    # 16-bit PNGs are the case the raster reader used to open by name a second time (bit depth,
    # then the OpenCV decode).
    cv_bgr = (rgb[..., ::-1].astype(np.uint16) * 257).copy()
    assert cv2.imwrite(str(path), cv_bgr)
    return path


def test_a_file_swapped_for_a_link_after_it_was_found_complete_is_refused_not_read(
    engine: MattingEngine, tmp_path: Path
) -> None:
    hot, out = tmp_path / "hot", tmp_path / "out"
    hot.mkdir()
    secret = save_jpeg(tmp_path / "private" / "secret.jpg", photo("coffee")[:200, :300])
    original = save_jpeg(hot / "x.jpg", photo("astronaut")[:200, :200])
    # The job is made for a regular file, as the service makes it once the file looked complete...
    jobs = [
        Job(source=original, destination=Destination.at(out / "x.png"), key="x"),
        Job(source=hot / "pipe.jpg", destination=Destination.at(out / "pipe.png"), key="pipe"),
        Job(source=hot / "ok.jpg", destination=Destination.at(out / "ok.png"), key="ok"),
    ]
    save_jpeg(hot / "ok.jpg", photo("chelsea")[:200, :200])
    # ...then, before the decode stage opens it, the name is swapped for a link (and another for a FIFO).
    _swap_for_link(original, secret)
    os.mkfifo(hot / "pipe.jpg")
    outcomes: dict[object, Outcome] = {}
    pipeline = Pipeline(engine, lambda o: outcomes.__setitem__(o.job.key, o))
    pipeline.start()
    for job in jobs:
        pipeline.submit(job)
    assert pipeline.wait_idle(timeout=120), "a FIFO must never hang the decode stage"
    assert pipeline.stop(drain_timeout=0)
    assert isinstance(outcomes["x"].error, SymlinkNotFollowed), outcomes["x"]
    assert "x.jpg: symbolic link not followed" in str(outcomes["x"].error)
    assert isinstance(outcomes["pipe"].error, NotARegularFile), outcomes["pipe"]
    assert outcomes["ok"].ok, outcomes["ok"].error
    assert sorted(p.name for p in out.iterdir()) == ["ok.png"]


def test_the_decode_reads_the_descriptor_it_opened_not_what_the_name_leads_to_later(tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    first = photo("astronaut")[:64, :96]
    other = photo("coffee")[:64, :96]
    _png16(hot / "x.png", first)
    decoy = _png16(tmp_path / "decoy.png", other)
    fd = open_source(
        Job(source=hot / "x.png", destination=Destination.at(tmp_path / "x-out.png"), source_root=hot)
    )
    try:
        reader = open_image(fd_path(fd), max_megapixels=10, name="x.png")
        _swap_for_link(hot / "x.png", decoy)  # after the open, before any pixel is read
        try:
            assert reader.info.bit_depth == 16
            pixels = reader.read()
        finally:
            reader.close()
    finally:
        os.close(fd)
    assert np.array_equal(pixels[..., :3] >> 8, first)


def test_reader_messages_name_the_file_not_its_descriptor(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_bytes(b"\xff\xd8\xff" + b"not really a jpeg" * 10)
    fd = open_source(Job(source=tmp_path / "notes.jpg", destination=Destination.at(tmp_path / "notes.png")))
    try:
        with pytest.raises(CorruptInput, match=r"^notes\.jpg: "):
            open_image(fd_path(fd), max_megapixels=10, name="notes.jpg").read()
    finally:
        os.close(fd)
