"""Profiles: what a hot folder does with the model's alpha. Only ``raw`` exists so far."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """``raw``: original colours, the model's alpha upsampled bilinearly, nothing else."""

    name: str
    output_format: str = "png"


BUILTIN_PROFILES: dict[str, Profile] = {
    "raw": Profile(name="raw"),
}

#: Formats that can carry the alpha a transparent cut-out needs.
ALPHA_FORMATS = ("png", "tiff", "webp")


def get_profile(name: str) -> Profile:
    try:
        return BUILTIN_PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_PROFILES))
        raise ConfigError([f"profile: unknown profile {name!r}; choose one of: {known}"]) from None
