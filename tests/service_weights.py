"""Weights the non-root service user can read, for tests that run hotmatte as that user.

The checkout's weights may be readable by their owner only (``hotmatte weights fetch`` wrote
them 0600 before outputs were created with the umask), and tests must not change the lead's
files: a copy under the studio's tree (removed with it), 0644, is what the service user loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO
from tests.studio import Studio


def weights_for_service_user(studio: Studio) -> Path:
    source = REPO / "weights"
    target = studio.root / "weights"
    if not target.is_dir():
        target.mkdir(mode=0o755)
        manifest = json.loads((source / "manifest.json").read_text())
        for name in ("manifest.json", manifest["file"]):
            shutil.copyfile(source / name, target / name)
            (target / name).chmod(0o644)
    return target
