"""The browser console and ``/metrics`` (issue: studio console). Public surface below."""

from daemon.console.context import ConsoleContext
from daemon.console.server import ConsoleServer

__all__ = ["ConsoleContext", "ConsoleServer"]
