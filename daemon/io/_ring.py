"""A ring of reusable arrays for the streaming writers.

A writer that hands each piece of an image to a worker (a compressor, an encoder thread)
would otherwise allocate a fresh array per piece: megabytes of newly zeroed pages each time,
a measurable share of a cut-out's CPU (daemon/io/_png.py and daemon/io/writers.py say how
much). The ring hands its arrays out in turn; the caller sizes it so that an array is free
again by the time the ring comes back round to it, and says why where it makes one.
"""

from __future__ import annotations

import numpy as np


class BufferRing:
    """``count`` arrays of ``dtype``, handed out in turn by :meth:`next`."""

    def __init__(self, count: int, dtype: np.dtype[np.generic] | type[np.generic]) -> None:
        if count < 1:
            raise ValueError("a ring holds at least one array")
        self._slots: list[np.ndarray | None] = [None] * count
        self._dtype = np.dtype(dtype)
        self._turn = -1

    def next(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next array of the ring, as ``shape`` (a view of its first rows when it is taller).

        An array is made on first use, and again when ``shape`` has other rows' sizes or more rows.
        """
        self._turn = (self._turn + 1) % len(self._slots)
        buffer = self._slots[self._turn]
        if buffer is None or buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
            buffer = self._slots[self._turn] = np.empty(shape, self._dtype)
        return buffer[: shape[0]]
