"""Profile knobs as form controls, and back: one control per :class:`~daemon.profiles.Profile` field.

The controls are derived from the model's fields (type and bounds), so a knob added to
``Profile`` shows up on the Try page without touching this file; :data:`HINTS` only narrows
a slider's travel and step where the model's bounds are far wider than anyone uses (a
custom profile beyond the travel still shows: the slider's end stretches to its value).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from daemon.config import parse_config
from daemon.errors import ConfigError
from daemon.profiles import BUILTIN_PROFILES, COLOUR_PRESETS, Profile, Shadow, background_kind

#: (slider max, step) where the model's own bound is impractical for a slider.
HINTS: dict[str, tuple[float, float]] = {
    "erode": (50, 0.5),
    "feather": (50, 0.5),
    "refine_radius": (64, 0.5),
    "refine_eps": (0.1, 0.0001),
    "margin": (50, 0.5),
    "detail_overlap": (0.75, 0.05),
    "shadow.distance": (100, 1),
    "shadow.blur": (100, 1),
    "shadow.opacity": (1, 0.05),
    "shadow.angle": (360, 1),
}
SKIPPED = {"name"}


@dataclass(frozen=True)
class Control:
    """One form control: ``kind`` is range, select, checkbox or text."""

    name: str
    kind: str
    value: Any
    low: float = 0
    high: float = 0
    step: float = 1
    choices: tuple[str, ...] = ()


def _bounds(info: FieldInfo) -> tuple[float, float]:
    low, high = 0.0, 0.0
    for meta in info.metadata:
        if isinstance(meta, (annotated_types.Ge, annotated_types.Gt)):
            low = float(meta.ge if isinstance(meta, annotated_types.Ge) else meta.gt)  # type: ignore[arg-type]
        if isinstance(meta, (annotated_types.Le, annotated_types.Lt)):
            high = float(meta.le if isinstance(meta, annotated_types.Le) else meta.lt)  # type: ignore[arg-type]
    return low, high


def _control(name: str, info: FieldInfo, value: Any) -> Control:
    annotation = info.annotation
    if typing.get_origin(annotation) is Literal:
        return Control(name, "select", value, choices=tuple(str(a) for a in typing.get_args(annotation)))
    if annotation is bool:
        return Control(name, "checkbox", bool(value))
    if annotation in (int, float):
        low, high = _bounds(info)
        high, step = HINTS.get(name, (high, 1 if annotation is int else 0.01))
        if name == "refine_radius" or name == "refine_eps":
            low = step  # gt=0
        return Control(name, "range", value, low, max(high, float(value)), step)
    return Control(name, "text", value)


def controls(profile: Profile) -> list[Control]:
    """Every knob of ``profile`` as a control holding its current value; the shadow's knobs last."""
    out = [
        _control(name, info, getattr(profile, name))
        for name, info in Profile.model_fields.items()
        if name not in SKIPPED and name != "shadow"
    ]
    shadow = profile.shadow or Shadow()
    out.append(Control("shadow", "checkbox", profile.shadow is not None))
    out += [
        _control(f"shadow.{name}", info, getattr(shadow, name)) for name, info in Shadow.model_fields.items()
    ]
    return out


def background_choices() -> list[str]:
    return ["transparent", *COLOUR_PRESETS]


def _optional_shadow() -> bool:
    """True while ``Profile.shadow`` is ``Shadow | None`` (the form's checkbox relies on it)."""
    annotation = Profile.model_fields["shadow"].annotation
    return typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def allowed_backgrounds(profiles: Mapping[str, Profile]) -> set[str]:
    """Background images the config already uses: the only files a form may name as a background."""
    return {p.background for p in profiles.values() if background_kind(p.background) == "image"}


def profile_from_form(form: Mapping[str, str], allowed_images: set[str], name: str = "try") -> Profile:
    """The knobs a form sent, validated as the config validates a profile; :class:`ConfigError` lines.

    A background image must be one of ``allowed_images``: no request may name another file on the
    server (it would be read and shown, or its existence told).
    """
    background = form.get("background", "transparent")
    try:
        image = background_kind(background) == "image"
    except ValueError:
        image = False  # reported by the validation below, with the other problems
    if image and background not in allowed_images:
        known = ", ".join(sorted(allowed_images)) or "none are configured"
        raise ConfigError(
            [
                f"background: an image background must be one a configured profile uses ({known}); "
                f"{background!r} is not"
            ]
        )
    data: dict[str, Any] = {"name": name}
    shadow: dict[str, str] = {}
    for key, value in form.items():
        if key.startswith("shadow."):
            shadow[key.removeprefix("shadow.")] = value
        elif key in Profile.model_fields and key not in SKIPPED and key != "shadow":
            data[key] = value
    if form.get("shadow") == "true" and _optional_shadow():
        data["shadow"] = {k: v for k, v in shadow.items() if k in Shadow.model_fields}
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "profile"
            lines.append(
                f"{where}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})"
                if error["loc"]
                else f"{error['msg'].removeprefix('Value error, ')}"
            )
        raise ConfigError(lines) from None


def snippet(name: str, profile: Profile, base: str) -> str:
    """A ``profiles:`` entry giving ``profile``: ``extends`` a built-in, with only the knobs that differ.

    ``base`` is the profile chosen on the page; a custom one is not a valid ``extends``, so its
    knobs are written out against ``raw``.
    """
    extends = base if base in BUILTIN_PROFILES else "raw"
    reference = BUILTIN_PROFILES[extends].model_dump(exclude={"name"})
    knobs = profile.model_dump(exclude={"name"})
    changed = {k: v for k, v in knobs.items() if reference.get(k) != v}
    entry = {"extends": extends, **changed}
    return yaml.safe_dump({"profiles": {name: entry}}, sort_keys=False, default_flow_style=False)


def validate_snippet(text: str, base: Path) -> list[str]:
    """Problems ``hotmatte check-config`` would report for a config holding ``text`` (none: valid)."""
    try:
        parse_config(text, base, "snippet")
    except ConfigError as exc:
        return exc.problems
    return []
