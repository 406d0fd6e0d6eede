"""Finding, checking and loading the converted weights at run time. Nothing here touches the network.

The weights directory holds ``isnet-general-use.safetensors`` (fp16) and a
``manifest.json`` written by ``hotmatte weights fetch``, which records where
the weights came from, their licence and their sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from daemon.config import DEFAULT_WEIGHTS_DIR
from daemon.errors import WeightsError

MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "isnet-general-use.safetensors"
ONNX_NAME = "isnet-general-use.onnx"
ENV_VAR = "HOTMATTE_WEIGHTS"


@dataclass(frozen=True)
class WeightsLocation:
    directory: Path
    origin: str  # "config", "$HOTMATTE_WEIGHTS" or "default", for error messages

    @property
    def weights_file(self) -> Path:
        return self.directory / WEIGHTS_NAME

    @property
    def manifest_file(self) -> Path:
        return self.directory / MANIFEST_NAME

    @property
    def onnx_file(self) -> Path:
        return self.directory / ONNX_NAME


def resolve_weights_dir(configured: Path | None) -> WeightsLocation:
    """config → ``$HOTMATTE_WEIGHTS`` → the ``weights/`` folder beside the package."""
    if configured is not None:
        return WeightsLocation(_as_directory(configured), "config")
    env = os.environ.get(ENV_VAR)
    if env:
        return WeightsLocation(_as_directory(Path(env).expanduser()), f"${ENV_VAR}")
    return WeightsLocation(DEFAULT_WEIGHTS_DIR, "default")


def _as_directory(path: Path) -> Path:
    # Accept the .safetensors file itself: users often point at the file.
    return path.parent if path.suffix == ".safetensors" else path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fix_hint(location: WeightsLocation) -> str:
    return f"run `hotmatte weights fetch --dir {location.directory}`"


def read_manifest(location: WeightsLocation) -> dict[str, object]:
    try:
        manifest = json.loads(location.manifest_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"no model weights in {location.directory} (from {location.origin}); {_fix_hint(location)}"
        ) from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"unreadable {location.manifest_file}: {exc}; {_fix_hint(location)}") from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"{location.manifest_file} is not a manifest; {_fix_hint(location)}")
    return manifest


def load_state_dict(location: WeightsLocation) -> dict[str, torch.Tensor]:
    """Verify the file against its manifest and load it; :class:`WeightsError` says how to fix any problem."""
    manifest = read_manifest(location)
    path = location.weights_file
    if path.is_dir():
        raise WeightsError(f"weights file {path} is a directory, not a file; {_fix_hint(location)}")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing; {_fix_hint(location)}")
    try:
        digest = sha256_of(path)
    except OSError as exc:  # unreadable for the service user (mode, owner), or an I/O error
        raise WeightsError(
            f"weights file {path} cannot be read ({exc.strerror or exc}); give the service user read"
            f" access, or {_fix_hint(location)}"
        ) from None
    if digest != manifest.get("sha256"):
        raise WeightsError(f"weights file {path} is corrupt (sha256 mismatch); {_fix_hint(location)}")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"weights file {path} cannot be loaded ({exc}); {_fix_hint(location)}") from None
