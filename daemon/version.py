"""``hotmatte --version``: the package, the installed model and the torch version.

Everything comes from metadata on disk (the package's and torch's dist-info, the weights'
``manifest.json``): importing torch alone takes seconds, too long for a version line, and
:mod:`daemon.matting.weights` imports it, so the weights folder is found here from
``$HOTMATTE_WEIGHTS`` or the default folder (a config's ``weights:`` is not read: ``--version``
takes no config).
"""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from daemon.config import DEFAULT_WEIGHTS_DIR

#: The same names as daemon/matting/weights.py, which cannot be imported without torch.
WEIGHTS_ENV_VAR = "HOTMATTE_WEIGHTS"
MANIFEST_NAME = "manifest.json"


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _model_line() -> str:
    configured = os.environ.get(WEIGHTS_ENV_VAR)
    directory = Path(configured).expanduser() if configured else DEFAULT_WEIGHTS_DIR
    if directory.suffix == ".safetensors":
        directory = directory.parent
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        return (
            f"model {manifest['model']} ({manifest['dtype']}, sha256 {manifest['sha256'][:12]}, "
            f"from {manifest['source']}) in {directory}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return f"model: none installed in {directory} (run `hotmatte weights fetch`)"


def version_text() -> str:
    return "\n".join(
        [
            f"hotmatte {_installed('hotmatte')}",
            _model_line(),
            f"torch {_installed('torch')}, Python {platform.python_version()}",
        ]
    )
