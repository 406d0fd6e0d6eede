"""The production-like studio of tests/studio.py really runs hotmatte as a non-root user."""

from __future__ import annotations

import os

from tests.conftest import run_hotmatte
from tests.studio import SERVICE_USER, Studio


def test_hotmatte_runs_as_the_service_user_with_the_units_umask(studio: Studio) -> None:
    shared = studio.shared("hot")
    assert shared.stat().st_gid == studio.studio_gid
    result = run_hotmatte("--help", run_as=studio.run_as())
    assert result.returncode == 0, result.stderr
    probe = run_hotmatte(
        "check-config", "/nonexistent.yaml", run_as=studio.run_as()
    )  # any command: it must start as that user
    assert probe.returncode == 2
    import pwd

    assert pwd.getpwnam(SERVICE_USER).pw_uid == studio.uid != os.geteuid()
