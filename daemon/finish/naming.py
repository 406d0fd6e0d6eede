"""Output file names from a small template: ``output_name: "{stem}"`` (the default) or ``"{stem}.{ext}"``.

One template serves the daemon (:func:`daemon.service.folder_files.destination_for`), ``hotmatte process``
(:func:`daemon.pipeline.batch.plan_jobs`) and the collision check, so the three always agree on which
sources write the same output. Placeholders:

- ``{stem}``: the source's name without its last extension (``x`` for ``x.psd``);
- ``{ext}``: that extension without the dot, as written (``psd``, ``PSD``; empty when none);
- ``{profile}``: the profile's name.

The output format's extension is always appended: ``"{stem}.{ext}"`` turns ``x.psd`` into
``x.psd.png``, so ``x.psd`` and ``x.jpg`` no longer both want ``x.png``. Trailing dots are dropped
from the rendered name, so a source without an extension gives ``x.png`` under ``"{stem}.{ext}"``
rather than ``x..png``.

Written here rather than with :class:`string.Template` because we want ``str.format``'s familiar
braces but none of its power (attributes, indexing, format specs), and errors that say which.
"""

from __future__ import annotations

import string
from pathlib import PurePosixPath

from daemon.finish.outputs import EXTENSIONS

DEFAULT_OUTPUT_NAME = "{stem}"
PLACEHOLDERS = ("stem", "ext", "profile")
_ALLOWED = ", ".join("{" + p + "}" for p in PLACEHOLDERS)


def check_template(template: str) -> str:
    """Return ``template`` if it is usable; ``ValueError`` saying what it should be otherwise."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise ValueError(f"{exc}; write a template like '{{stem}}' or '{{stem}}.{{ext}}'") from None
    fields = []
    for literal, field, spec, conversion in parts:
        if "/" in literal or "\\" in literal or "\0" in literal:
            raise ValueError("must be a file name, without / or \\ (outputs mirror the input folders)")
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise ValueError(f"unknown placeholder {shown}; use only {_ALLOWED}")
        fields.append(field)
    if "stem" not in fields:
        # Without the stem every file of a folder would want the same name, and all but one fail.
        raise ValueError(
            f"must contain {{stem}} (and may use {_ALLOWED}), like '{{stem}}' or '{{stem}}.{{ext}}'"
        )
    return template


def render(template: str, source_name: str, profile: str) -> str:
    """The output's name for a source called ``source_name``, without the format's extension."""
    source = PurePosixPath(source_name)
    name = template.format(stem=source.stem, ext=source.suffix.removeprefix("."), profile=profile)
    name = name.rstrip(".") or name
    # check_template rules out "/" in the template and the config rules it out of profile names
    # used by {profile}; a name that would still leave its folder must never reach a writer.
    if not name or "/" in name or "\0" in name:
        raise ValueError(f"output_name {template!r} gives no usable file name for {source_name!r}")
    return name


def output_relative(template: str, relative: str, profile: str, output_format: str) -> PurePosixPath:
    """``relative`` (a source path below its input folder) → its output path below the output folder."""
    source = PurePosixPath(relative)
    return source.parent / (render(template, source.name, profile) + EXTENSIONS[output_format])
