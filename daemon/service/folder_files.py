"""How a hot folder's file maps to its journal key, its fingerprint and the paths of its result.

The service, ``hotmatte status`` and the tests share these, so a file's identity and where its
result goes are decided in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from daemon.config import Config, Folder
from daemon.finish.naming import DEFAULT_OUTPUT_NAME, output_relative
from daemon.finish.outputs import Destination
from daemon.journal.store import Fingerprint, profile_hash
from daemon.matting.engine import choose_device
from daemon.pipeline.stages import PIPELINE_VERSION
from daemon.profiles import TIFF_COMPRESSION_DEFAULT, Profile, get_profile
from daemon.refine.crops import resolve_budget


def output_format(folder: Folder, config: Config) -> str:
    """The folder's ``output_format``, else its profile's (config validation guarantees it exists)."""
    return folder.output_format or get_profile(folder.profile, config.profiles).output_format


def output_template(folder: Folder, config: Config) -> str:
    """The folder's ``output_name``, else its profile's (daemon/finish/naming.py)."""
    return folder.output_name or get_profile(folder.profile, config.profiles).output_name


def fingerprint(config: Config, folder: Folder, size: int, mtime_ns: int) -> Fingerprint:
    # Every knob of the profile: changing any of them must redo the folder's files. The output
    # name too: a changed template is a changed output, written again under its new name.
    profile = _as_run(get_profile(folder.profile, config.profiles), config)
    settings = profile.model_dump_json(exclude={"output_name", "tiff_compression"})
    fmt = output_format(folder, config)
    digest = profile_hash(settings, fmt, config.model_size)
    template = output_template(folder, config)
    if template != DEFAULT_OUTPUT_NAME:  # folded in only when set, so existing journals stay valid
        digest = profile_hash(digest, template)
    if fmt == "tiff" and profile.tiff_compression != TIFF_COMPRESSION_DEFAULT:  # the same rule
        digest = profile_hash(digest, f"tiff_compression={profile.tiff_compression}")
    return Fingerprint(size, mtime_ns, digest, PIPELINE_VERSION)


def _as_run(profile: Profile, config: Config) -> Profile:
    """``profile`` with ``detail_budget: auto`` resolved for the engine's device, as the run will.

    So the hash changes exactly where the output does: on CUDA ``auto`` is the 16 it replaced
    (journals stay valid), on a CPU it is fewer, larger crops (its files are done again).
    """
    if profile.detail_budget != "auto":
        return profile
    # Not choose_device("cuda"): it raises without a GPU, and a fingerprint must not (the engine will).
    device = choose_device("auto") if config.device == "auto" else torch.device(config.device)
    return profile.model_copy(update={"detail_budget": resolve_budget("auto", device)})


def relative_key(folder: Folder, path: Path) -> str:
    return path.relative_to(folder.input).as_posix()


def destination_for(folder: Folder, relative: str, config: Config, root: Path | None = None) -> Destination:
    """Where ``relative``'s result goes below ``root`` (the folder's output unless given)."""
    name = output_relative(
        output_template(folder, config), relative, folder.profile, output_format(folder, config)
    )
    return Destination(root or folder.output, name)


def output_key(folder: Folder, config: Config) -> Callable[[str], str]:
    """``relative source path → relative output path``: two sources with the same key collide."""
    template, fmt = output_template(folder, config), output_format(folder, config)
    return lambda relative: output_relative(template, relative, folder.profile, fmt).as_posix()
