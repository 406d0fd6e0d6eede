"""Logging: one JSON object per line on stdout, which journald captures as-is.

Every record has ``event`` (what happened), ``level`` and ``timestamp`` (UTC,
ISO 8601); per-file records add ``folder`` and ``path``. Libraries that log
through the standard :mod:`logging` module (watchdog does) are forwarded into
the same stream so nothing ends up in a second format.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _ForwardToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).log(record.levelno, "library", message=record.getMessage())
        except Exception:  # logging must never raise into the code that logged
            self.handleError(record)


def configure_logging(level: str = "info") -> None:
    """Send JSON lines at ``level`` and above to stdout; safe to call again on reload."""
    threshold = LEVELS[level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers = [_ForwardToStructlog()]
    # Libraries are chatty at debug; their warnings are what matters to an operator.
    root.setLevel(max(threshold, logging.WARNING))
