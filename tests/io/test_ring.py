"""The writers' buffer ring hands its arrays out in turn and reuses each when it comes round."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.io._ring import BufferRing


def test_arrays_come_in_turn_and_are_reused_when_the_ring_comes_round() -> None:
    ring = BufferRing(3, np.uint16)
    first = [ring.next((4, 5, 3)) for _ in range(3)]
    assert all(a.dtype == np.uint16 and a.shape == (4, 5, 3) for a in first)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(first) for b in first[i + 1 :])
    again = ring.next((2, 5, 3))  # fewer rows: a view of the same array
    assert again.shape == (2, 5, 3) and np.shares_memory(again, first[0])


def test_an_array_too_small_or_of_another_row_shape_is_made_anew() -> None:
    ring = BufferRing(1, np.uint8)
    small = ring.next((2, 8))
    assert not np.shares_memory(ring.next((3, 8)), small)  # more rows
    taller = ring.next((3, 8))
    assert not np.shares_memory(ring.next((3, 9)), taller)  # other rows' size


def test_a_ring_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BufferRing(0, np.uint8)
