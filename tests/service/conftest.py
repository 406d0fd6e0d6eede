"""Fixtures shared by the service tests."""

from __future__ import annotations

import pytest

from tests.service_harness import small_photo_jpeg


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    """A small real photo as JPEG bytes (:func:`tests.service_harness.small_photo_jpeg`)."""
    return small_photo_jpeg()
