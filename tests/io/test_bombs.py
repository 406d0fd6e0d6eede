"""Decompression bombs: files of a few bytes whose header declares gigapixels.

Every format's size check must run on the header bytes, before any decode and before any
Pillow call that may load (a PNG's ``getexif()`` once decoded a 74-byte file's 30 GB). The
readers are run in a worker whose address space is capped at 3 GB, and ``hotmatte process``
under ``prlimit --as``: a decode would fail there with MemoryError (or be killed), never
pass as ``TooLarge``.
"""

from __future__ import annotations

import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.errors import CorruptInput, TooLarge
from daemon.io.detect import open_image
from tests.conftest import HOTMATTE, REPO, SMALL_MODEL_SIZE
from tests.io.fuzz_runner import ADDRESS_SPACE_BYTES, Worker
from tests.service_harness import Daemon, folder_settings, write_config

SIDE = 100_000  # 10,000 MP, 30 GB as RGB
# The daemon runs more threads than hotmatte process (each reserves address space for its stack).
DAEMON_ADDRESS_SPACE = 4 << 30


def _png_chunk(kind: bytes, payload: bytes, length: int | None = None) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return (
        struct.pack(">I", len(payload) if length is None else length)
        + kind
        + payload
        + struct.pack(">I", crc)
    )


def png_bomb(width: int = SIDE, height: int = SIDE) -> bytes:
    """The file from the report: 74 bytes declaring 100000×100000 RGB (a few zero bytes of data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 778, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb() -> bytes:
    components = b"".join(bytes((i, 0x11, 0)) for i in (1, 2, 3))
    sof = struct.pack(">BHHB", 8, 65_000, 65_000, 3) + components
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9"


def webp_bomb() -> bytes:
    vp8x = bytes(4) + (SIDE - 1).to_bytes(3, "little") + (SIDE - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_bomb() -> bytes:
    """One deflate strip that would inflate to 30 GB."""
    strip = zlib.compress(b"\x00" * 4096)
    entries = [
        (256, 4, 1, SIDE),  # ImageWidth
        (257, 4, 1, SIDE),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 8),  # Compression: deflate
        (262, 3, 1, 2),  # Photometric: RGB
        (273, 4, 1, 0),  # StripOffsets, patched below
        (277, 3, 1, 3),  # SamplesPerPixel
        (278, 4, 1, SIDE),  # RowsPerStrip
        (279, 4, 1, len(strip)),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = strip_offset if tag == 273 else value
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + strip


def psb_bomb() -> bytes:
    header = struct.pack(">4sH6sHIIHH", b"8BPS", 2, b"\0" * 6, 3, 300_000, 300_000, 16, 3)
    return header + struct.pack(">IIQH", 0, 0, 0, 0) + bytes(64)


BOMBS = {
    "png-bomb.png": (png_bomb, f"{SIDE}×{SIDE}"),
    "jpeg-bomb.jpg": (jpeg_bomb, "65000×65000"),
    "webp-bomb.webp": (webp_bomb, f"{SIDE}×{SIDE}"),
    "tiff-bomb.tif": (tiff_bomb, f"{SIDE}×{SIDE}"),
    "psb-bomb.psb": (psb_bomb, "300000×300000"),
}


def _write_bombs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (make, _) in BOMBS.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    return paths


def test_the_png_bomb_is_as_small_as_the_reported_one() -> None:
    assert len(png_bomb()) == 74


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_from_its_header_under_a_memory_cap(tmp_path: Path, name: str) -> None:
    path = _write_bombs(tmp_path)[name]
    with Worker(timeout=30) as worker:
        result = worker.run(path)
    assert result.outcome == "daemon.errors.TooLarge", result.message
    assert BOMBS[name][1] in result.message and "max" in result.message
    assert result.seconds < 5
    assert result.max_rss_kb < 500 * 1024  # nothing was decoded


def test_hotmatte_process_refuses_every_bomb_quickly_under_a_memory_cap(tmp_path: Path) -> None:
    _write_bombs(tmp_path / "in")
    started = time.monotonic()
    done = subprocess.run(
        [
            *("prlimit", f"--as={ADDRESS_SPACE_BYTES}", *HOTMATTE, "process", str(tmp_path / "in")),
            *("-o", str(tmp_path / "out"), "--device", "cpu", "--model-size", str(SMALL_MODEL_SIZE)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr  # files failed; not killed (negative), not a crash
    failed = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("FAILED")]
    assert len(failed) == len(BOMBS), done.stdout + done.stderr
    for name, (_, size) in BOMBS.items():
        [line] = [line for line in failed if line.split(":")[0].endswith(name)]
        assert ": TooLarge: " in line and size in line
    assert seconds < 120  # the model load; the refusals themselves take milliseconds


def test_an_absurd_side_is_refused_whatever_max_megapixels_allows(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    path.write_bytes(png_bomb(width=400_000, height=1))
    with pytest.raises(TooLarge, match="no side may exceed 300,000"):
        open_image(path, max_megapixels=1e9)


def _valid_png(tmp_path: Path) -> bytes:
    noise = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "ok.png")
    return (tmp_path / "ok.png").read_bytes()


def test_a_chunk_length_past_the_end_is_refused_before_pillow_reads_it(tmp_path: Path) -> None:
    data = _valid_png(tmp_path)
    text = _png_chunk(b"tEXt", b"Comment\x00hello", length=0xFFFFFFFF)
    path = tmp_path / "long-chunk.png"
    path.write_bytes(data[:33] + text + data[33:])  # right after IHDR
    with pytest.raises(
        CorruptInput, match=r"long-chunk\.png: damaged PNG \(chunk 'tEXt' .* 4294967295 bytes"
    ):
        open_image(path, max_megapixels=10)


def test_a_truncated_png_is_corrupt_at_once_not_a_transient_os_error(tmp_path: Path) -> None:
    data = _valid_png(tmp_path)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])  # a copy cut short, inside IDAT
    with pytest.raises(CorruptInput, match=r"cut\.png: damaged PNG .*re-export or re-copy the file"):
        reader = open_image(path, max_megapixels=10)
        reader.proxy(64)


def test_the_daemon_fails_a_bomb_and_a_truncated_png_at_once_and_goes_on(tmp_path: Path) -> None:
    good = _valid_png(tmp_path)
    hostile = {
        "png-bomb.png": (png_bomb(), "TooLarge", f"{SIDE}×{SIDE}"),
        "cut.png": (good[: len(good) // 2], "CorruptInput", "damaged PNG"),
    }
    config = write_config(tmp_path / "config.yaml", [folder_settings(tmp_path, "hot")])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        # Capped once running (the model is loaded): a decode of the bomb could not pass unnoticed.
        cap = subprocess.run(
            ["prlimit", f"--pid={daemon.proc.pid}", f"--as={DAEMON_ADDRESS_SPACE}"], check=False
        )
        assert cap.returncode == 0
        for name, (data, _, _) in hostile.items():
            (tmp_path / "hot" / name).write_bytes(data)
        failed = daemon.wait_for("failed", count=len(hostile), timeout=60)
        (tmp_path / "hot" / "good.png").write_bytes(good)
        daemon.wait_for("done", path="good.png")
        assert daemon.proc.poll() is None
        assert daemon.named("retry") == []  # damaged bytes are never retried as a disk error
        assert daemon.terminate() == 0
    for event in failed:
        _, error_class, words = hostile[event["path"]]
        assert event["error_class"] == error_class and words in event["reason"], event
