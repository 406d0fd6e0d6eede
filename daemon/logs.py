"""Logging: JSON lines for machines, coloured one-line events for a person at a terminal.

Every record has ``event`` (what happened), ``level`` and ``timestamp``; per-file
records add ``folder`` and ``path``. ``log_format`` picks the rendering:

- ``json``: one JSON object per line on stdout (UTC ISO 8601 timestamps), which journald
  and log shippers capture as-is;
- ``console``: structlog's :class:`~structlog.dev.ConsoleRenderer`, one line per event with
  local time, coloured when stdout is a terminal (and ``NO_COLOR`` is unset);
- ``auto`` (the default): ``console`` when stdout is a terminal and we are not under systemd,
  else ``json``. systemd sets ``INVOCATION_ID`` for every service and ``JOURNAL_STREAM`` when
  stdout goes to the journal; either means JSON, even if stdout looks like a terminal
  (``StandardOutput=tty``).

Libraries that log through the standard :mod:`logging` module (watchdog does) are forwarded
into the same stream so nothing ends up in a second format.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import Literal, TextIO

import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
SYSTEMD_VARIABLES = ("JOURNAL_STREAM", "INVOCATION_ID")


class _ForwardToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).log(record.levelno, "library", message=record.getMessage())
        except Exception:  # logging must never raise into the code that logged
            self.handleError(record)


def resolve_format(
    log_format: LogFormat, stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> Literal["json", "console"]:
    """What ``auto`` means here: console only for a person at a terminal, not under systemd."""
    if log_format != "auto":
        return log_format
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in SYSTEMD_VARIABLES):
        return "json"
    return "console" if (stream or sys.stdout).isatty() else "json"


def _renderer(kind: Literal["json", "console"], stream: TextIO) -> list[Processor]:
    if kind == "json":
        return [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    colours = stream.isatty() and not os.environ.get("NO_COLOR")  # no escape codes into files
    return [
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        # The console renderer formats exceptions itself (format_exc_info would flatten them first).
        structlog.dev.ConsoleRenderer(colors=colours, pad_event_to=24),
    ]


def configure_logging(level: str = "info", log_format: LogFormat = "auto") -> None:
    """Send events at ``level`` and above to stdout in ``log_format``; safe to call again on reload."""
    threshold = LEVELS[level]
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper):
        # A name that is not UTF-8 (caf\xe9.jpg) reaches the log as a surrogate escape; a UTF-8
        # locale's strict stdout would raise on it in whatever thread logs it. Spell it out instead.
        stream.reconfigure(errors="backslashreplace")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *_renderer(resolve_format(log_format, stream), stream),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers = [_ForwardToStructlog()]
    # Libraries are chatty at debug; their warnings are what matters to an operator.
    root.setLevel(max(threshold, logging.WARNING))
