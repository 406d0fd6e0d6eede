"""Profiles: what a hot folder does with the model's alpha, and how the result is delivered.

A :class:`Profile` is a frozen set of knobs. Five are built in (:data:`BUILTIN_PROFILES`);
a config's ``profiles:`` mapping adds custom ones that ``extends:`` a built-in and override
any knob (:func:`resolve_custom_profiles`).

Lengths (``erode``, ``feather``, ``refine_radius``, shadow ``distance`` and ``blur``) are
pixels of an image whose long side is :data:`REFERENCE_SIDE` px or less; on larger images
they grow with the long side (see :func:`pixel_scale`), so a 100-MP file gets the same look
as its 4-MP preview instead of a hairline erosion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from daemon.errors import ConfigError
from daemon.finish.naming import DEFAULT_OUTPUT_NAME, check_template
from daemon.io.writers import MAX_SIDE, OutputFormat

#: TIFF outputs' compression when a profile does not say (journals hash the others only).
TiffCompression = Literal["deflate", "lzw", "none"]
TIFF_COMPRESSION_DEFAULT: TiffCompression = "deflate"
REFERENCE_SIDE = 2048
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
#: Named backgrounds; the ID-photo presets studios are asked for most.
COLOUR_PRESETS: dict[str, str] = {
    "white": "#ffffff",
    "light_blue": "#cfe3f5",
    "red": "#c8102e",
    "grey": "#bfbfbf",
}
#: ID formats: output pixels at 300 dpi (35×45 mm = 413×531 px, 2×2 in = 600×600 px).
ID_SIZES: dict[str, tuple[int, int]] = {"35x45mm": (413, 531), "2x2in": (600, 600)}
ID_DPI = 300.0
CANVAS = re.compile(r"^(none|square|[1-9][0-9]{0,5}x[1-9][0-9]{0,5})$")

MAX_DETAIL_BUDGET = 256

Length = Annotated[float, Field(ge=0, le=500)]


class _Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shadow(_Knobs):
    """A soft drop shadow under the subject (opaque backgrounds only)."""

    angle: Annotated[float, Field(ge=-360, le=360)] = 90.0  # degrees; 90 = straight down
    distance: Length = 12.0
    blur: Length = 18.0
    opacity: Annotated[float, Field(ge=0, le=1)] = 0.35


class Profile(_Knobs):
    """Every knob, with the defaults of ``raw`` (the model's alpha, untouched colours)."""

    name: str = "raw"
    alpha_threshold: Annotated[int, Field(ge=0, le=255)] = 0
    erode: Length = 0.0
    feather: Length = 0.0
    refine: Literal["none", "guided"] = "none"
    refine_radius: Annotated[float, Field(gt=0, le=200)] = 8.0
    refine_eps: Annotated[float, Field(gt=0, le=1)] = 1e-4
    #: crops: a second model pass on crops along the uncertain edge (daemon/refine/crops.py).
    detail: Literal["none", "crops"] = "none"
    detail_crop: Annotated[int, Field(ge=256, le=16384)] = 2048  # source px; larger when over budget
    detail_overlap: Annotated[float, Field(ge=0, le=0.75)] = 0.5
    #: Most crops per image; ``auto``: by the engine's device (daemon/refine/crops.py:resolve_budget).
    detail_budget: int | Literal["auto"] = "auto"
    decontaminate: bool = False
    background: str = "transparent"
    output_format: OutputFormat = "png"
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 92
    #: TIFF outputs: deflate (ZIP), lzw or none (daemon/io/writers.py).
    tiff_compression: TiffCompression = TIFF_COMPRESSION_DEFAULT
    save_mask: bool = False
    keep_largest_subject: bool = False
    fill_holes: bool = False
    crop: Literal["none", "subject", "face"] = "none"
    margin: Annotated[float, Field(ge=0, le=200)] = 0.0
    canvas: str = "none"
    shadow: Shadow | None = None
    id_size: Literal["35x45mm", "2x2in"] = "35x45mm"
    #: The output's file name (daemon/finish/naming.py); a folder's own output_name overrides it.
    output_name: str = DEFAULT_OUTPUT_NAME

    @field_validator("output_name")
    @classmethod
    def _output_name_is_a_template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("detail_budget", mode="before")
    @classmethod
    def _budget_is_auto_or_a_count(cls, value: object) -> object:
        # One message for both forms (a plain int | Literal union reports two, neither naming both).
        if isinstance(value, str) and value.strip().isdigit():  # the console's forms send text
            value = int(value)
        if value == "auto" or (type(value) is int and 1 <= value <= MAX_DETAIL_BUDGET):
            return value
        raise ValueError(f"must be auto or a whole number from 1 to {MAX_DETAIL_BUDGET}")

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        background_kind(self.background)  # raises ValueError on a bad value
        if not CANVAS.match(self.canvas):
            raise ValueError(f"canvas must be none, square or WxH (like 2000x1500), not {self.canvas!r}")
        limit = MAX_SIDE.get(self.output_format, (0, ""))[0]
        if limit and "x" in self.canvas and max(map(int, self.canvas.split("x"))) > limit:
            raise ValueError(
                f"output_format {self.output_format} holds at most {limit} px a side: canvas too large"
            )
        if self.output_format == "jpeg" and self.transparent:
            raise ValueError("output_format jpeg has no alpha: set an opaque background")
        if self.shadow is not None and self.transparent:
            raise ValueError("a shadow needs an opaque background")
        return self

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"

    @property
    def is_raw(self) -> bool:
        """True when nothing but the upsampled alpha is applied (the ``raw`` fast path)."""
        delivery = {"name", "output_format", "output_name", "tiff_compression"}  # saving, not cutting
        return self.model_dump(exclude=delivery) == Profile().model_dump(exclude=delivery)


def background_kind(value: str) -> Literal["transparent", "colour", "image"]:
    if value == "transparent":
        return "transparent"
    if value in COLOUR_PRESETS or HEX_COLOUR.match(value):
        return "colour"
    if "/" in value or "." in value:
        return "image"
    presets = ", ".join(COLOUR_PRESETS)
    raise ValueError(f"background must be transparent, #rrggbb, {presets} or an image path, not {value!r}")


def background_rgb(value: str) -> tuple[float, float, float]:
    """A colour background as RGB in [0, 1]."""
    hex_value = COLOUR_PRESETS.get(value, value)
    r, g, b = (int(hex_value[i : i + 2], 16) / 255.0 for i in (1, 3, 5))
    return r, g, b


def background_path(value: str) -> Path:
    return Path(value).expanduser()


def pixel_scale(width: int, height: int) -> float:
    """Factor applied to every length knob for a ``width``×``height`` output."""
    return max(1.0, max(width, height) / REFERENCE_SIDE)


BUILTIN_PROFILES: dict[str, Profile] = {
    "raw": Profile(name="raw"),
    "portrait": Profile(
        name="portrait",
        detail="crops",
        refine="guided",
        refine_radius=8.0,
        refine_eps=1e-4,
        decontaminate=True,
    ),
    "product": Profile(
        name="product",
        detail="crops",
        background="white",
        alpha_threshold=8,
        refine="guided",
        decontaminate=True,
        keep_largest_subject=True,
        crop="subject",
        margin=5.0,
        canvas="square",
        output_format="png",
    ),
    "id_photo": Profile(
        name="id_photo",
        detail="crops",
        background="white",
        refine="guided",
        decontaminate=True,
        keep_largest_subject=True,
        fill_holes=True,
        crop="face",
        id_size="35x45mm",
        output_format="jpeg",
        jpeg_quality=95,
    ),
    "complex_background": Profile(
        name="complex_background",
        detail="crops",
        alpha_threshold=40,
        keep_largest_subject=True,
        fill_holes=True,
        refine="guided",
        decontaminate=True,
    ),
}


def resolve_custom_profiles(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{name: {extends: builtin, knob: value}}`` into full knob mappings for :class:`Profile`.

    Runs before pydantic validation so that a bad knob is reported as
    ``profiles.<name>.<knob>``; a missing or unknown ``extends`` raises ``ValueError``.
    """
    resolved: dict[str, Any] = {}
    for name, entry in raw.items():
        if name in BUILTIN_PROFILES:
            raise ValueError(f"profiles.{name}: a custom profile cannot reuse a built-in name")
        if isinstance(entry, Profile):  # already resolved (a config re-validated with overrides)
            resolved[name] = entry
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"profiles.{name}: must be a mapping with `extends:` and knobs")
        overrides = dict(entry)
        base = overrides.pop("extends", None)
        if base not in BUILTIN_PROFILES:
            known = ", ".join(BUILTIN_PROFILES)
            raise ValueError(f"profiles.{name}.extends: must name a built-in profile ({known}), not {base!r}")
        resolved[name] = {**BUILTIN_PROFILES[base].model_dump(), **overrides, "name": name}
    return resolved


def build_profile(name: str, settings: Mapping[str, Any]) -> Profile:
    """Validate one custom profile outside a config (tests, tools); :class:`ConfigError` on bad knobs."""
    try:
        data = resolve_custom_profiles({name: settings})[name]
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [f"profiles.{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        ) from None
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def get_profile(name: str, custom: Mapping[str, Profile] | None = None) -> Profile:
    """The built-in or custom profile called ``name``; :class:`ConfigError` naming the choices if none."""
    profiles = {**BUILTIN_PROFILES, **(custom or {})}
    try:
        return profiles[name]
    except KeyError:
        known = ", ".join(sorted(profiles))
        raise ConfigError([f"profile: unknown profile {name!r}; choose one of: {known}"]) from None
