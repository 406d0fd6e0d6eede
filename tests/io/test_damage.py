"""The reader boundary tells "the bytes are bad" (permanent) from "the disk failed" (transient)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.errors import CorruptInput, TooLarge
from daemon.io._damage import damaged_bytes_are_input_errors


def test_an_error_the_kernel_reports_stays_an_os_error(tmp_path: Path) -> None:
    # A real failing read() (EISDIR here; EIO or ESTALE from a share look the same: errno set).
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught, damaged_bytes_are_input_errors("x.png", "PNG"):
            os.read(fd, 16)
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EISDIR
    assert not isinstance(caught.value, CorruptInput)


def test_pillows_truncated_file_error_is_a_damaged_file(tmp_path: Path) -> None:
    Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    expected = r"^cut\.png: damaged PNG \(.*truncated.*\); re-export or re-copy"
    with (
        pytest.raises(CorruptInput, match=expected),
        damaged_bytes_are_input_errors("cut.png", "PNG"),
        Image.open(tmp_path / "cut.png") as image,
    ):
        image.load()


def test_running_out_of_memory_on_one_file_is_too_large_for_that_file() -> None:
    with (
        pytest.raises(TooLarge, match="needs more memory"),
        damaged_bytes_are_input_errors("big.tif", "TIFF"),
    ):
        np.empty((1 << 40, 1 << 20), np.uint8)  # numpy refuses at once: a real MemoryError


def test_a_programming_error_is_not_hidden_as_a_damaged_file() -> None:
    with pytest.raises(AttributeError), damaged_bytes_are_input_errors("x.jpg", "JPEG"):
        getattr(object(), "no_such_attribute")  # noqa: B009 - the point is a real AttributeError
