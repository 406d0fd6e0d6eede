"""What these CPU cores can run, for the tests that need it."""

from __future__ import annotations

import pytest

from daemon.matting.engine import cpu_runs_bf16

#: bf16 tests skip on AVX2-only cores, where oneDNN has no bf16 convolutions at all.
needs_bf16_cores = pytest.mark.skipif(not cpu_runs_bf16(), reason="these cores have no bf16 convolutions")
