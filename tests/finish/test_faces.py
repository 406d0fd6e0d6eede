"""Face detection for ID crops: real photos, window voting, and the no-face failure."""

from __future__ import annotations

import pytest

from daemon.errors import NoFaceFound
from daemon.finish.faces import Face, find_face, pick_face
from tests.conftest import photo


def test_face_is_found_on_a_real_portrait() -> None:
    face = find_face(photo("astronaut"))
    cx, cy = face.centre
    assert 200 < cx < 260 and 90 < cy < 150  # her face, not the flag or the helmet


def test_a_face_needs_several_overlapping_windows() -> None:
    stray = Face(10, 10, 40, 40)
    windows = [Face(200 + d, 100 + d, 80, 80) for d in range(5)]
    assert pick_face([stray], min_votes=4) is None
    face = pick_face([stray, *windows], min_votes=4)
    assert face is not None and face.centre == (242.0, 142.0)
    with pytest.raises(NoFaceFound):
        find_face(photo("coffee"))
